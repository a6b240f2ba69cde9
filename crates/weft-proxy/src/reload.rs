//! Reloads the resilience sections of the proxy's config file when it changes. Listener and
//! discovery settings need a restart (they own sockets); an invalid file changes nothing,
//! is logged with file and line, and is counted.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus_client::metrics::counter::Counter;
use weft_core::config::ProxyConfig;
use weft_discovery::filewatch::{watch_file, Change};

use crate::resilience::policy::Table;

pub(crate) fn watch_config(
    path: PathBuf,
    policies: Arc<ArcSwap<Table>>,
    errors: Counter,
) -> tokio::task::JoinHandle<()> {
    let seen = std::fs::read(&path).ok();
    let file = path.clone();
    watch_file(&path, seen, move |change| {
        if let Change::Unreadable(e) = change {
            tracing::warn!(file = %file.display(), error = %e, "config unreadable; keeping the running config");
            errors.inc();
            return;
        }
        let next = ProxyConfig::load(&file)
            .map_err(|e| e.to_string())
            .and_then(|c| c.policies());
        match next {
            Ok(p) => {
                if p != policies.load().source {
                    tracing::info!(file = %file.display(), "resilience policy reloaded");
                    policies.store(Arc::new(Table::new(p)));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "invalid config; keeping the running config");
                errors.inc();
            }
        }
    })
}
