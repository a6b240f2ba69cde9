//! Request, response and latency families, labelled by direction, service and endpoint.
//!
//! Label values come only from discovery (service and endpoint names) or from fixed sets
//! (status codes, error kinds), so a client cannot grow the series count.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::names::family;

/// Bucket bounds in seconds. Below 1 ms they are 0.1 ms apart: a hop within a node or on
/// loopback takes a few hundred microseconds, and a single 0–0.5 ms bucket left every such
/// quantile a guess. The eight added there cost each histogram a seventh more series;
/// spacing them by ratio down to microseconds would cost twice that, for a precision no
/// figure shown needs. Above 1 ms: 0.5–1 ms apart to 10 ms, about 10 % apart to 40 ms and
/// 4 % from 40 ms to 60 ms (where a "50 ms" service's p95 should read within a few
/// percent), coarser above.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.0006, 0.0007, 0.0008, 0.0009, 0.001, 0.0015, 0.002,
    0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.010, 0.011, 0.012, 0.014, 0.016, 0.018,
    0.020, 0.022, 0.025, 0.028, 0.031, 0.034, 0.037, 0.040, 0.042, 0.044, 0.046, 0.048, 0.050,
    0.052, 0.054, 0.056, 0.058, 0.060, 0.065, 0.070, 0.075, 0.080, 0.090, 0.100, 0.125, 0.150,
    0.200, 0.250, 0.300, 0.400, 0.500, 0.750, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Direction {
    Outbound,
    Inbound,
    Admin,
    /// The ingress listener (connections only: its requests count as the outbound's).
    Ingress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbound => "outbound",
            Self::Inbound => "inbound",
            Self::Admin => "admin",
            Self::Ingress => "ingress",
        }
    }
}

impl EncodeLabelValue for Direction {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Classification {
    Success,
    Failure,
}

impl Classification {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

impl EncodeLabelValue for Classification {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub direction: Direction,
    pub service: String,
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub direction: Direction,
    pub service: String,
    pub endpoint: String,
    pub status_code: String,
    pub classification: Classification,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub direction: Direction,
    pub service: String,
    pub endpoint: String,
    pub classification: Classification,
}

/// A latency exemplar's labels: the trace the request was in (its spans were kept).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceExemplar {
    pub trace_id: String,
}

/// The service latency histogram: each bucket keeps the last kept trace that fell in it,
/// so the slowest requests lead to their traces.
type LatencyHistogram = HistogramWithExemplars<TraceExemplar>;

fn latency_with_exemplars() -> LatencyHistogram {
    HistogramWithExemplars::new(LATENCY_BUCKETS.iter().copied())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub direction: Direction,
    pub service: String,
}

pub(crate) fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RouteLabels, Counter>,
    responses: Family<ResponseLabels, Counter>,
    latency: Family<RouteLabels, LatencyHistogram, fn() -> LatencyHistogram>,
    attempts: Family<AttemptLabels, Counter>,
    retries: Family<ServiceLabels, Counter>,
    budget_exhausted: Family<ServiceLabels, Counter>,
    endpoint_retries: Family<RouteLabels, Counter>,
    endpoint_budget_exhausted: Family<RouteLabels, Counter>,
    endpoints: Family<ServiceLabels, Gauge>,
    retiring: Arc<Retiring>,
}

/// Series of endpoints and services that left discovery: each is rendered once more (so its
/// final counts are collected), then removed, unless a handle made since still uses it (the
/// endpoint came back). Without this, every rollout would leave its series behind for good.
#[derive(Default)]
struct Retiring {
    /// What left, and the render count when it did.
    queue: Mutex<Vec<(u64, Retired)>>,
    renders: AtomicU64,
    /// Handles given out and not retired, per series set.
    live: Mutex<HashMap<Live, usize>>,
}

enum Retired {
    Route(RouteMetrics),
    Service(ServiceLabels),
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Live {
    Route(RouteLabels),
    Service(ServiceLabels),
}

impl Retiring {
    fn hold(&self, key: Live) {
        *self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    fn release(&self, key: Live, retired: Retired) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = live.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                live.remove(&key);
            }
        }
        drop(live);
        let at = self.renders.load(Ordering::Acquire);
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((at, retired));
    }
}

/// A service's retry counters.
#[derive(Clone)]
pub struct ServiceCounters {
    /// Attempts made beyond each request's first.
    pub retries: Counter,
    /// Retries wanted but refused by the budget.
    pub budget_exhausted: Counter,
    /// Endpoints discovery gives the service now (ready instances), set on each change:
    /// autoscalers divide a service's load by it.
    pub endpoints: Gauge,
}

impl HttpMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            responses: Family::default(),
            latency: Family::new_with_constructor(latency_with_exemplars),
            attempts: Family::default(),
            retries: Family::default(),
            budget_exhausted: Family::default(),
            endpoint_retries: Family::default(),
            endpoint_budget_exhausted: Family::default(),
            endpoints: Family::default(),
            retiring: Arc::default(),
        };
        registry.register(
            family::SERVICE_ENDPOINTS,
            "Endpoints (ready instances) discovery gives each service this proxy resolved",
            m.endpoints.clone(),
        );
        registry.register(
            family::ATTEMPTS,
            "Attempts sent to each endpoint, retries included, by outcome (what was sent, where requests and responses count what clients saw)",
            m.attempts.clone(),
        );
        registry.register(
            family::RETRIES,
            "Attempts beyond a request's first, per service",
            m.retries.clone(),
        );
        registry.register(
            family::BUDGET_EXHAUSTED,
            "Retries a service wanted but its retry budget refused",
            m.budget_exhausted.clone(),
        );
        registry.register(
            family::ENDPOINT_RETRIES,
            "Retries made after an attempt to this endpoint failed (each is also one of its service's retries)",
            m.endpoint_retries.clone(),
        );
        registry.register(
            family::ENDPOINT_BUDGET_EXHAUSTED,
            "Retries the retry budget refused after an attempt to this endpoint failed",
            m.endpoint_budget_exhausted.clone(),
        );
        registry.register(
            family::REQUESTS,
            "Requests received, per direction, service and endpoint",
            m.requests.clone(),
        );
        registry.register(
            family::RESPONSES,
            "Responses completed, by status code and classification; error names what the proxy answered itself",
            m.responses.clone(),
        );
        registry.register(
            family::LATENCY,
            "Time from request received to response headers",
            m.latency.clone(),
        );
        m
    }

    pub fn service(&self, direction: Direction, service: &str) -> ServiceCounters {
        let labels = ServiceLabels {
            direction,
            service: service.to_string(),
        };
        self.retiring.hold(Live::Service(labels.clone()));
        ServiceCounters {
            retries: self.retries.get_or_create(&labels).clone(),
            budget_exhausted: self.budget_exhausted.get_or_create(&labels).clone(),
            endpoints: self.endpoints.get_or_create(&labels).clone(),
        }
    }

    /// Handles for one (direction, service, endpoint); resolve once and keep.
    pub fn route(&self, direction: Direction, service: &str, endpoint: &str) -> RouteMetrics {
        let labels = RouteLabels {
            direction,
            service: service.to_string(),
            endpoint: endpoint.to_string(),
        };
        let attempt = |classification| {
            self.attempts
                .get_or_create(&AttemptLabels {
                    direction,
                    service: service.to_string(),
                    endpoint: endpoint.to_string(),
                    classification,
                })
                .clone()
        };
        self.retiring.hold(Live::Route(labels.clone()));
        RouteMetrics(Arc::new(RouteInner {
            attempt_ok: attempt(Classification::Success),
            attempt_failed: attempt(Classification::Failure),
            requests: self.requests.get_or_create(&labels).clone(),
            retries: self.endpoint_retries.get_or_create(&labels).clone(),
            budget_exhausted: self
                .endpoint_budget_exhausted
                .get_or_create(&labels)
                .clone(),
            latency: self.latency.get_or_create(&labels).clone(),
            responses: Mutex::new(Responses::default()),
            family: self.responses.clone(),
            labels,
        }))
    }
}

impl HttpMetrics {
    /// `route`'s endpoint has left: its series go after the next render.
    pub fn retire(&self, route: &RouteMetrics) {
        let labels = route.0.labels.clone();
        self.retiring
            .release(Live::Route(labels), Retired::Route(route.clone()));
    }

    /// The service has left: its per-service series go after the next render.
    pub fn retire_service(&self, direction: Direction, service: &str) {
        let labels = ServiceLabels {
            direction,
            service: service.to_string(),
        };
        self.retiring
            .release(Live::Service(labels.clone()), Retired::Service(labels));
    }

    /// Before a render: removes what was retired before the previous one and is not used
    /// again since.
    pub(crate) fn prune(&self) {
        let now = self.retiring.renders.fetch_add(1, Ordering::AcqRel);
        let mut queue = self
            .retiring
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if queue.is_empty() {
            return;
        }
        let live = self.retiring.live.lock().unwrap_or_else(|e| e.into_inner());
        queue.retain(|(at, retired)| {
            if *at >= now {
                return true;
            }
            match retired {
                Retired::Route(route)
                    if !live.contains_key(&Live::Route(route.0.labels.clone())) =>
                {
                    self.remove_route(route)
                }
                Retired::Service(labels) if !live.contains_key(&Live::Service(labels.clone())) => {
                    self.retries.remove(labels);
                    self.budget_exhausted.remove(labels);
                    self.endpoints.remove(labels);
                }
                _ => {}
            }
            false
        });
    }

    fn remove_route(&self, route: &RouteMetrics) {
        let labels = &route.0.labels;
        self.requests.remove(labels);
        self.latency.remove(labels);
        self.endpoint_retries.remove(labels);
        self.endpoint_budget_exhausted.remove(labels);
        for classification in [Classification::Success, Classification::Failure] {
            self.attempts.remove(&AttemptLabels {
                direction: labels.direction,
                service: labels.service.clone(),
                endpoint: labels.endpoint.clone(),
                classification,
            });
        }
        let mut cache = route.0.responses.lock().unwrap_or_else(|e| e.into_inner());
        // Under the lock: a request still in flight on this route with an answer not seen
        // before is not counted from now on, rather than bring a removed series back for
        // good (nothing would remove it again, or collect it).
        cache.removed = true;
        for ((status, classification, error), _) in cache.list.iter() {
            self.responses.remove(&ResponseLabels {
                direction: labels.direction,
                service: labels.service.clone(),
                endpoint: labels.endpoint.clone(),
                status_code: status.to_string(),
                classification: *classification,
                error: error.to_string(),
            });
        }
    }
}

/// One route's counters. Response counters are looked up once per (status, class, error)
/// and cached here, so the shared family's lock is not taken per request.
#[derive(Clone)]
pub struct RouteMetrics(Arc<RouteInner>);

struct RouteInner {
    labels: RouteLabels,
    attempt_ok: Counter,
    attempt_failed: Counter,
    /// Retries made, and refused by the budget, after an attempt here failed.
    retries: Counter,
    budget_exhausted: Counter,
    requests: Counter,
    latency: LatencyHistogram,
    responses: Mutex<Responses>,
    family: Family<ResponseLabels, Counter>,
}

#[derive(Default)]
struct Responses {
    list: Vec<(ResponseKey, Counter)>,
    /// The route's series are gone (its endpoint left and was collected).
    removed: bool,
}

type ResponseKey = (u16, Classification, &'static str);

impl RouteMetrics {
    pub fn request(&self) {
        self.0.requests.inc();
    }

    pub fn attempt(&self, class: Classification) {
        match class {
            Classification::Success => self.0.attempt_ok.inc(),
            Classification::Failure => self.0.attempt_failed.inc(),
        };
    }

    /// An attempt here failed and the request goes again (elsewhere, as a rule).
    pub fn retried(&self) {
        self.0.retries.inc();
    }

    /// An attempt here failed and was worth retrying, but the retry budget refused.
    pub fn retry_refused(&self) {
        self.0.budget_exhausted.inc();
    }

    pub fn latency(&self, elapsed: Duration) {
        self.0.latency.observe(elapsed.as_secs_f64(), None, None);
    }

    /// A request's latency, whose trace (`trace_id`, hex) was kept: the exemplar of its
    /// bucket, stamped now, until a later kept request falls in the same bucket.
    pub fn latency_traced(&self, elapsed: Duration, trace_id: String) {
        let exemplar = TraceExemplar { trace_id };
        let now = std::time::SystemTime::now();
        self.0
            .latency
            .observe(elapsed.as_secs_f64(), Some(exemplar), Some(now));
    }

    /// Counts a finished response; `error` is "" unless the proxy answered itself.
    pub fn response(&self, status: u16, class: Classification, error: &'static str) {
        let key = (status, class, error);
        let mut cache = self.0.responses.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = cache.list.iter().find(|(k, _)| *k == key) {
            c.inc();
            return;
        }
        if cache.removed {
            return;
        }
        let labels = ResponseLabels {
            direction: self.0.labels.direction,
            service: self.0.labels.service.clone(),
            endpoint: self.0.labels.endpoint.clone(),
            status_code: status.to_string(),
            classification: class,
            error: error.to_string(),
        };
        let counter = self.0.family.get_or_create(&labels).clone();
        counter.inc();
        cache.list.push((key, counter));
    }
}
