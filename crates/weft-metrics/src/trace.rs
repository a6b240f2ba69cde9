//! What became of the spans a proxy made: exported, or dropped because the queue was full
//! or the collector did not take them. Requests never wait on export, so this is where a
//! slow or absent collector shows.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::names::family;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpanLabels {
    /// `exported`, `queue full` or `export failed`.
    outcome: &'static str,
}

#[derive(Clone)]
pub struct TraceMetrics {
    exported: Counter,
    queue_full: Counter,
    export_failed: Counter,
}

impl TraceMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let spans = Family::<SpanLabels, Counter>::default();
        registry.register(
            family::TRACE_SPANS,
            "Spans this proxy made that were kept, by what became of them",
            spans.clone(),
        );
        // Made now, so each reads 0 from the start rather than appearing at its first count.
        let outcome = |outcome| spans.get_or_create(&SpanLabels { outcome }).clone();
        Self {
            exported: outcome("exported"),
            queue_full: outcome("queue full"),
            export_failed: outcome("export failed"),
        }
    }

    pub fn exported(&self, n: u64) {
        self.exported.inc_by(n);
    }

    /// Spans that found the export queue full.
    pub fn queue_full(&self, n: u64) {
        self.queue_full.inc_by(n);
    }

    /// A batch the collector did not take (unreachable, refused, or too slow).
    pub fn export_failed(&self, n: u64) {
        self.export_failed.inc_by(n);
    }
}
