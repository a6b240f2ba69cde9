//! Discovery from a TOML file, watched ([`crate::filewatch`]). A bad edit is logged with file and
//! line, counted, and the last good table stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;
use weft_core::{EndpointSet, ServiceName};

use crate::filewatch::{watch_file, Change};
use crate::registry::Registry;
use crate::{Discover, DiscoveryError, Resolution, Table};

pub type ErrorHook = Arc<dyn Fn(&DiscoveryError) + Send + Sync>;

pub struct FileDiscovery {
    path: PathBuf,
    registry: Registry,
    /// The bytes the current table came from; the watcher compares against them.
    loaded: std::sync::Mutex<Option<Vec<u8>>>,
}

impl FileDiscovery {
    /// Reads the file once; an error here is a start-up error for the caller to report.
    pub fn load(path: &Path) -> Result<Arc<Self>, DiscoveryError> {
        let (bytes, table) = read(path)?;
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            registry: Registry::new(table),
            loaded: std::sync::Mutex::new(Some(bytes)),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The registry the file's tables are published into, for a server of its answers.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Watches the file until the returned task is aborted. The watch is in place when this
    /// returns, and any change since [`FileDiscovery::load`] is applied at once.
    pub fn spawn_watch(self: &Arc<Self>, on_error: ErrorHook) -> tokio::task::JoinHandle<()> {
        let seen = self.loaded.lock().unwrap_or_else(|e| e.into_inner()).take();
        let this = Arc::clone(self);
        watch_file(&self.path, seen, move |change| match change {
            Change::Changed(bytes) => {
                let text = String::from_utf8_lossy(bytes);
                match Table::parse(&this.path, &text) {
                    Ok(table) => {
                        tracing::info!(file = %this.path.display(), services = table.services.len(), "discovery updated");
                        this.registry.publish(table);
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "invalid discovery file; keeping last good state");
                        on_error(&err);
                    }
                }
            }
            Change::Unreadable(source) => {
                let err = DiscoveryError::Io {
                    path: this.path.clone(),
                    source,
                };
                tracing::warn!(error = %err, "discovery file unreadable; keeping last good state");
                on_error(&err);
            }
        })
    }
}

fn read(path: &Path) -> Result<(Vec<u8>, Table), DiscoveryError> {
    let bytes = std::fs::read(path).map_err(|source| DiscoveryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let table = Table::parse(path, &String::from_utf8_lossy(&bytes))?;
    Ok((bytes, table))
}

impl Discover for FileDiscovery {
    fn watch(&self, service: &ServiceName) -> Option<watch::Receiver<Resolution>> {
        self.registry.watch(service)
    }

    fn routes(&self, service: &ServiceName) -> watch::Receiver<weft_core::route::RoutesState> {
        self.registry.routes(service)
    }

    fn snapshot(&self) -> Vec<(ServiceName, EndpointSet)> {
        self.registry.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn doc(port: u16) -> String {
        format!("[[services.world.endpoints]]\naddr = \"127.0.0.1:{port}\"\n")
    }

    async fn eventually(mut f: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not met in 5 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn edits_reach_watchers_and_bad_edits_keep_the_last_good_table() {
        let dir = std::env::temp_dir().join(format!("weft-disc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("discovery.toml");
        std::fs::write(&path, doc(1000)).unwrap();
        let disc = FileDiscovery::load(&path).unwrap();
        let errors = Arc::new(AtomicUsize::new(0));
        let e2 = errors.clone();
        let _task = disc.spawn_watch(Arc::new(move |_| {
            e2.fetch_add(1, Ordering::SeqCst);
        }));
        let rx = disc.watch(&ServiceName::new("world")).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;

        std::fs::write(&path, doc(2000)).unwrap();
        eventually(
            || matches!(&*rx.borrow(), Resolution::Endpoints(s) if s[0].addr.port() == 2000),
        )
        .await;

        std::fs::write(&path, "[[services.world.endpoints]]\naddr = 7\n").unwrap();
        eventually(|| errors.load(Ordering::SeqCst) == 1).await;
        assert!(matches!(&*rx.borrow(), Resolution::Endpoints(s) if s[0].addr.port() == 2000));

        std::fs::write(&path, "").unwrap();
        eventually(|| *rx.borrow() == Resolution::DoesNotExist).await;
        assert!(disc.watch(&ServiceName::new("world")).is_none());
        std::fs::remove_dir_all(&dir).ok();
    }
}
