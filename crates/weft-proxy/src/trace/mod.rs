//! The proxy's part in distributed tracing: every request it carries joins the caller's
//! trace (W3C or B3, written onward in the form it came) or starts one, and its spans are
//! exported over OTLP when the trace is sampled — or, whatever the head decision said,
//! when the request failed or was slow ([`Tracer::keeps`]).
//!
//! Tail keeping across proxies: a proxy that keeps an unsampled trace says so on the
//! response it sends back (`weft-trace-keep`), and the proxy upstream, still holding its
//! spans, keeps them too. The node's own outbound and inbound share a [`Kept`] memory, so
//! an app's response carries the decision of the calls it made through the same proxy.
//!
//! Layout: [`span`] holds one request's spans while it is carried; [`export`] batches kept
//! spans to the collector off the request's way.

mod export;
mod span;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use weft_core::config::TracingConfig;
use weft_core::trace::{self as context, SpanId, TraceId};
use weft_metrics::TraceMetrics;

pub(crate) use span::{Kind, RequestTrace};

/// On a response between proxies: the proxy below kept this unsampled trace.
pub(crate) const WEFT_TRACE_KEEP: HeaderName = HeaderName::from_static("weft-trace-keep");

pub(crate) struct Tracer {
    /// Head sampling: a new trace is sampled when a random u64 falls below this.
    threshold: u64,
    keep_failed: bool,
    keep_slower_than: Option<Duration>,
    trust_ingress_sampling: bool,
    queue: mpsc::Sender<span::Finished>,
    metrics: TraceMetrics,
    kept: Kept,
}

impl Tracer {
    /// A tracer, and the exporter that sends what it keeps to `config.otlp`.
    pub(crate) fn start(
        config: &TracingConfig,
        node: &str,
        metrics: TraceMetrics,
    ) -> Option<(Arc<Self>, Exporter)> {
        let otlp = config.collector()?;
        let (queue, spans) = mpsc::channel(config.queue);
        let (flush, flushed) = watch::channel(false);
        let task = export::spawn(otlp, node, config, (spans, flushed), metrics.clone());
        let threshold = (config.sample_rate * u64::MAX as f64) as u64;
        let tracer = Self {
            threshold,
            keep_failed: config.keep_failed,
            keep_slower_than: Some(config.keep_slower_than).filter(|d| !d.is_zero()),
            trust_ingress_sampling: config.trust_ingress_sampling,
            queue,
            metrics,
            kept: Kept::new(),
        };
        Some((Arc::new(tracer), Exporter { flush, task }))
    }

    /// The trace a request arriving with `headers` belongs to, and this proxy's span in it:
    /// a child of the caller's span, or a new root. The caller's sampling decision stands;
    /// without one, the head rate decides.
    pub(crate) fn join(
        self: &Arc<Self>,
        headers: &HeaderMap,
        kind: Kind,
        start: Instant,
    ) -> Box<RequestTrace> {
        let incoming = context::extract(headers);
        let mut trace = Box::new(RequestTrace::new(Arc::clone(self), kind, start));
        match incoming {
            Some(inc) => {
                trace.format = inc.format;
                trace.wide = inc.wide;
                trace.tracestate = inc.tracestate;
                match inc.parent {
                    Some((t, s)) => {
                        trace.trace = t;
                        trace.parent = Some(s);
                    }
                    None => trace.trace = new_trace(),
                }
                // An outside caller's decision is its own, not the mesh's, unless trusted.
                trace.sampled = match inc.sampled {
                    Some(s) if kind != Kind::Ingress || self.trust_ingress_sampling => s,
                    _ => self.head(),
                };
            }
            None => {
                trace.trace = new_trace();
                trace.sampled = self.head();
            }
        }
        trace
    }

    fn head(&self) -> bool {
        self.threshold != 0 && fastrand::u64(..) <= self.threshold
    }

    /// Why a request's spans are exported: sampled, failed, slow, or kept below (a proxy
    /// downstream, or a call the app made through this proxy for the same trace); `None`
    /// drops them.
    pub(crate) fn keeps(
        &self,
        t: &RequestTrace,
        failed: bool,
        took: Duration,
    ) -> Option<&'static str> {
        if t.sampled {
            Some("sampled")
        } else if failed && self.keep_failed {
            Some("failed")
        } else if self.keep_slower_than.is_some_and(|s| took > s) {
            Some("slow")
        } else if t.kept_below || self.kept.contains(t.trace) {
            Some("downstream")
        } else {
            None
        }
    }

    /// Remembers that this node keeps `trace`, for the app's own request it serves.
    pub(crate) fn remember(&self, trace: TraceId) {
        self.kept.insert(trace);
    }

    /// Queues a finished request's spans; a full queue drops them, counted.
    pub(crate) fn export(&self, done: span::Finished) {
        let n = done.len() as u64;
        if self.queue.try_send(done).is_err() {
            self.metrics.queue_full(n);
        }
    }
}

/// The task that exports kept spans, until it is told to send what it holds and end.
pub(crate) struct Exporter {
    flush: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Exporter {
    /// Sends what is queued (the proxy has drained: no more will come), waiting at most
    /// `time`.
    pub(crate) async fn flush(self, time: Duration) {
        self.flush.send_replace(true);
        if tokio::time::timeout(time, self.task).await.is_err() {
            tracing::warn!(?time, "the last spans were not all exported in time");
        }
    }
}

/// Marks a response to the proxy upstream: this trace is kept here.
pub(crate) fn mark(headers: &mut HeaderMap) {
    headers.insert(WEFT_TRACE_KEEP, HeaderValue::from_static("1"));
}

/// Whether the proxy below kept the trace; the mark goes no further than this proxy.
pub(crate) fn marked(headers: &mut HeaderMap) -> bool {
    headers.remove(WEFT_TRACE_KEEP).is_some()
}

fn new_trace() -> TraceId {
    TraceId::from_u128(fastrand::u128(1..)).expect("nonzero")
}

pub(crate) fn new_span() -> SpanId {
    SpanId::from_u64(fastrand::u64(1..)).expect("nonzero")
}

/// Traces this node keeps that were not sampled, recently: a fixed table of 64-bit keys
/// folded from the ids, overwritten by later ones, with no lock on the request's way. A
/// trace pushed out before its app answered is exported only where it failed or was slow.
struct Kept {
    slots: Box<[AtomicU64]>,
}

const KEPT_SLOTS: usize = 4096;

impl Kept {
    fn new() -> Self {
        Self {
            slots: (0..KEPT_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn key(trace: TraceId) -> u64 {
        let low = u64::from_be_bytes(trace.0[8..].try_into().expect("8 bytes"));
        let high = u64::from_be_bytes(trace.0[..8].try_into().expect("8 bytes"));
        // Zero marks an empty slot, so the one id folding to zero shares 1's key.
        (low ^ high.rotate_left(1)).max(1)
    }

    fn insert(&self, trace: TraceId) {
        let key = Self::key(trace);
        self.slots[key as usize % KEPT_SLOTS].store(key, Ordering::Relaxed);
    }

    fn contains(&self, trace: TraceId) -> bool {
        let key = Self::key(trace);
        self.slots[key as usize % KEPT_SLOTS].load(Ordering::Relaxed) == key
    }
}
