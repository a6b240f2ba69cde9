//! The dashboard's own mesh identity, when it has one. Whoever starts the dashboard keeps it
//! (the `weft` binary runs its certifier, the demo signs it in memory); the dashboard shows
//! it in `/api/summary` and, in the families a proxy exports, in `/metrics`, where
//! `weft check` reads its leaf as it reads a proxy's.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use weft_metrics::{IdentityMetrics, IdentityOnly};

/// What the dashboard holds now.
pub struct IdentityView {
    pub identity: String,
    /// When its leaf expires; `None` before it has one.
    pub valid_until: Option<SystemTime>,
    /// Why it has no valid leaf, when it has none.
    pub error: Option<String>,
}

/// Reads what is held now, setting `metrics` from it on the way.
pub type Observe = dyn Fn(&IdentityMetrics) -> IdentityView + Send + Sync;

#[derive(Clone)]
pub struct OwnIdentity {
    pub metrics: Arc<IdentityOnly>,
    pub observe: Arc<Observe>,
    /// How it reaches proxies over mutual TLS, to tap them.
    pub dial: Option<Arc<dyn crate::tap::Dial>>,
}

impl fmt::Debug for OwnIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnIdentity").finish_non_exhaustive()
    }
}

impl OwnIdentity {
    pub fn new(observe: Arc<Observe>) -> Self {
        Self {
            metrics: Arc::new(IdentityOnly::default()),
            observe,
            dial: None,
        }
    }

    /// Taps proxies over mutual TLS by `dial`.
    pub fn with_dial(mut self, dial: Arc<dyn crate::tap::Dial>) -> Self {
        self.dial = Some(dial);
        self
    }

    /// For `/api/summary`.
    pub fn summary(&self) -> Value {
        let view = (self.observe)(&self.metrics.identity);
        let until = view
            .valid_until
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        json!({
            "identity": view.identity,
            "valid_until_unix_s": until,
            "error": view.error,
        })
    }

    /// For `/metrics`: the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        (self.observe)(&self.metrics.identity);
        self.metrics.render_text()
    }
}
