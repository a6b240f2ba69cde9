//! The `weft-ctx-*` headers a proxy would not pass on: staging overrides from sources it
//! does not trust (a peer not named in config, a caller outside the mesh at the ingress),
//! dropped and counted here so an operator sees who tries.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::names::family;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DroppedLabels {
    direction: &'static str,
    header: &'static str,
    /// A fixed phrase: `untrusted peer`, `outside caller`.
    reason: &'static str,
}

#[derive(Clone)]
pub struct ContextMetrics {
    dropped: Family<DroppedLabels, Counter>,
}

impl ContextMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let dropped = Family::<DroppedLabels, Counter>::default();
        registry.register(
            family::CONTEXT_HEADERS_DROPPED,
            "weft-ctx-* headers dropped from requests whose source may not set them",
            dropped.clone(),
        );
        Self { dropped }
    }

    /// `header` was dropped from a request at `direction`'s listener, for `reason`.
    pub fn dropped(&self, direction: &'static str, header: &'static str, reason: &'static str) {
        self.dropped
            .get_or_create(&DroppedLabels {
                direction,
                header,
                reason,
            })
            .inc();
    }
}
