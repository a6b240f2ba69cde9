//! The Destination API's answers from a discovery file, for a control plane without
//! Kubernetes (VMs, tests, the demo): the same file format proxies read, watched the same
//! way. The file's names are services of the default namespace; other namespaces hold
//! nothing.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use weft_core::route::RoutesState;
use weft_core::{Resolution, ServiceName};
use weft_discovery::{DiscoveryError, FileDiscovery};

use crate::cluster::Key;
use crate::index::Answers;

pub struct FileAnswers {
    file: Arc<FileDiscovery>,
    default_namespace: String,
    synced: watch::Sender<bool>,
    /// Answers for names the file can never hold (another namespace); no sender ever
    /// changes it, but it lives as long as this, so streams on it stay open.
    nowhere: watch::Sender<Resolution>,
    no_routes: watch::Sender<RoutesState>,
    _watch: tokio::task::JoinHandle<()>,
}

impl FileAnswers {
    /// Reads `path` (an error names the file and line) and watches it for changes.
    pub fn load(path: &Path, default_namespace: &str) -> Result<Arc<Self>, DiscoveryError> {
        let file = FileDiscovery::load(path)?;
        let watch = file.spawn_watch(Arc::new(|_| {}));
        Ok(Arc::new(Self {
            file,
            default_namespace: default_namespace.to_string(),
            synced: watch::Sender::new(true),
            nowhere: watch::Sender::new(Resolution::DoesNotExist),
            no_routes: watch::Sender::new(RoutesState::Known(None)),
            _watch: watch,
        }))
    }
}

impl Drop for FileAnswers {
    fn drop(&mut self) {
        self._watch.abort();
    }
}

impl Answers for FileAnswers {
    fn synced(&self) -> watch::Receiver<bool> {
        self.synced.subscribe()
    }

    fn is_synced(&self) -> bool {
        true
    }

    fn subscribe(&self, key: &Key, _port: u16) -> watch::Receiver<Resolution> {
        if key.namespace == self.default_namespace {
            self.file.registry().follow(&ServiceName::new(&key.name))
        } else {
            self.nowhere.subscribe()
        }
    }

    fn routes(&self, key: &Key) -> watch::Receiver<RoutesState> {
        if key.namespace == self.default_namespace {
            self.file.registry().routes(&ServiceName::new(&key.name))
        } else {
            self.no_routes.subscribe()
        }
    }

    fn subscribed(&self) -> usize {
        self.file.registry().followed()
    }

    fn known_services(&self) -> usize {
        self.file.registry().known()
    }
}
