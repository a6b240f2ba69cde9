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
    on_change: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut(Change<'_>) + Send + 'static,
{
    watch_file_with(path, seen, on_change, start_watcher, POLL)
}

/// The platform's folder watcher, calling `notify` on every event.
fn start_watcher(dir: &Path, notify: Notify) -> notify::Result<Box<dyn Watcher + Send>> {
    let mut w = notify::recommended_watcher(notify)?;
    w.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(Box::new(w))
}

/// What a folder watcher calls on each event.
type Notify = Box<dyn FnMut(notify::Result<notify::Event>) + Send>;

/// [`watch_file`] with the watcher's start and the poll interval given: a watcher that
/// cannot start (inotify limits, a filesystem without events) leaves the poll alone to see
/// changes, every `poll`.
fn watch_file_with<F, S>(
    path: &Path,
    seen: Option<Vec<u8>>,
    mut on_change: F,
    start: S,
    poll: Duration,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut(Change<'_>) + Send + 'static,
    S: FnOnce(&Path, Notify) -> notify::Result<Box<dyn Watcher + Send>>,
{
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = path.file_name().map(|n| n.to_os_string());
    let notify: Notify = Box::new(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(e) => touches(e, name.as_deref()),
            Err(_) => true,
        };
        if relevant {
            let _ = tx.try_send(());
        }
    });
    let watcher = match start(&dir, notify) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch folder; polling only");
            None
        }
    };
    let path: PathBuf = path.to_path_buf();
    tokio::spawn(async move {
        // Events arrive while the watcher lives; without one the channel is closed, and the
        // poll alone finds changes.
        let mut events = watcher.is_some();
        let _watcher = watcher;
        let mut last = seen;
        let mut first = true;
        loop {
            if !std::mem::take(&mut first) {
                tokio::select! {
                    got = rx.recv(), if events => match got {
                        Some(()) => {
                            tokio::time::sleep(SETTLE).await;
                            while rx.try_recv().is_ok() {}
                        }
                        None => events = false,
                    },
                    _ = tokio::time::sleep(poll) => {}
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn without_a_watcher_the_poll_still_sees_every_change() {
        let dir = std::env::temp_dir().join(format!("weft-filewatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("watched.toml");
        std::fs::write(&path, "one").unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let failing = |_: &Path, _: Notify| -> notify::Result<Box<dyn Watcher + Send>> {
            Err(notify::Error::generic("no watches left"))
        };
        let task = watch_file_with(
            &path,
            Some(b"one".to_vec()),
            move |change| {
                if let Change::Changed(bytes) = change {
                    log.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(bytes).into_owned());
                }
            },
            failing,
            Duration::from_millis(50),
        );
        for text in ["two", "three"] {
            std::fs::write(&path, text).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !seen.lock().unwrap().iter().any(|t| t == text) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{text:?} was never seen: {:?}",
                    seen.lock().unwrap()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert!(
            !task.is_finished(),
            "the watch ended when its watcher could not start"
        );
        task.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
