//! Watches one file through its folder — Kubernetes ConfigMaps change by swapping a symlink
//! beside the file — with a slow poll to catch what events miss. Calls back with the new
//! bytes whenever they differ from the last seen.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Events arriving within this window are handled as one change.
const SETTLE: Duration = Duration::from_millis(50);
/// Re-read even without events, in case the platform dropped some.
const POLL: Duration = Duration::from_secs(2);

/// Whether an event in the folder may have changed the file: a write, create, rename or
/// removal of it, or of a ConfigMap's `..data` links. Opens and reads are not (our own
/// read of the file raises them: reacting would re-read it forever), nor are other files.
fn touches(event: &notify::Event, name: Option<&std::ffi::OsStr>) -> bool {
    if matches!(event.kind, notify::EventKind::Access(_)) {
        return false;
    }
    event.paths.is_empty()
        || event.paths.iter().any(|p| {
            let file = p.file_name();
            file.is_none()
                || file == name
                || file.is_some_and(|f| f.as_encoded_bytes().starts_with(b".."))
        })
}

/// What became of a read of the watched file.
pub enum Change<'a> {
    Changed(&'a [u8]),
    /// Unreadable (mid-swap a ConfigMap's file can be missing for an instant).
    Unreadable(std::io::Error),
}

/// Watches `path` until the task is aborted. The watch is in place when this returns;
/// `seen` is the content the caller already has, so an edit made since is not missed.
pub fn watch_file<F>(
    path: &Path,
    seen: Option<Vec<u8>>,
    mut on_change: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut(Change<'_>) + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = path.file_name().map(|n| n.to_os_string());
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(e) => touches(e, name.as_deref()),
            Err(_) => true,
        };
        if relevant {
            let _ = tx.try_send(());
        }
    })
    .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|_| w));
    let watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch folder; polling only");
            None
        }
    };
    let path: PathBuf = path.to_path_buf();
    tokio::spawn(async move {
        let _watcher = watcher;
        let mut last = seen;
        let mut first = true;
        loop {
            if !std::mem::take(&mut first) {
                tokio::select! {
                    got = rx.recv() => {
                        if got.is_none() { return; }
                        tokio::time::sleep(SETTLE).await;
                        while rx.try_recv().is_ok() {}
                    }
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
            match std::fs::read(&path) {
                Ok(bytes) => {
                    if last.as_deref() != Some(&bytes[..]) {
                        on_change(Change::Changed(&bytes));
                        last = Some(bytes);
                    }
                }
                Err(e) => {
                    if last.is_some() {
                        on_change(Change::Unreadable(e));
                        last = None;
                    }
                }
            }
        }
    })
}
