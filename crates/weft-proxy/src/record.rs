//! What the proxy records of each request, in one place: an attempt's outcome (into its
//! endpoint's latency estimate, failure accrual and attempt count), and the client's view
//! once per request (request, latency to the response headers, and the response when its
//! body ends).

use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode};
use weft_core::headers::GRPC_STATUS;
use weft_core::policy::Policy;
use weft_core::trace::TraceId;
use weft_metrics::{Classification, RouteMetrics};

use crate::balancer::{EndpointState, LoadGuard};
use crate::error::{ProxyError, Side};
use crate::resilience::retry::Answer;
use crate::routing::Routed;
use crate::tap::Tapped;
use crate::trace::RequestTrace;

/// Success is a status below 500 and, for gRPC, `grpc-status` 0 or absent.
pub(crate) fn classify(status: StatusCode, headers: &HeaderMap) -> Classification {
    if status.is_server_error() || grpc_failed(headers) {
        Classification::Failure
    } else {
        Classification::Success
    }
}

fn grpc_failed(headers: &HeaderMap) -> bool {
    headers
        .get(GRPC_STATUS)
        .is_some_and(|v| v.as_bytes() != b"0")
}

/// An attempt's outcome as the balancer and failure accrual learn it: its latency from
/// `sent_at` to `now`, and whether it succeeded. A failure the client caused says nothing
/// of the endpoint and is not held against it.
pub(crate) fn attempt(
    endpoint: &EndpointState,
    answer: Answer<'_>,
    sent_at: Instant,
    now: Instant,
    policy: &Policy,
) -> Classification {
    endpoint
        .ewma
        .observe(now - sent_at, now, policy.balancer.decay);
    let class = attempt_counted(endpoint, answer);
    let clients_fault = matches!(answer, Answer::Error(e) if e.side() == Side::Downstream);
    if !clients_fault {
        endpoint
            .accrual
            .record(class == Classification::Success, now, &policy.accrual);
    }
    class
}

/// An attempt counted, and nothing more: for a side that does not balance by outcomes (the
/// inbound, which delivers where the peer chose).
pub(crate) fn attempt_counted(endpoint: &EndpointState, answer: Answer<'_>) -> Classification {
    let class = match answer {
        Answer::Response(status, headers) => classify(status, headers),
        Answer::Error(_) => Classification::Failure,
    };
    endpoint.metrics.attempt(class);
    class
}

/// A relay's connection to an endpoint, as failure accrual and the attempt count learn it:
/// an endpoint that cannot be reached fails as a refused request does. (How long it took
/// to connect says little of how fast it answers, so the latency estimate is left alone.)
pub(crate) fn connected(
    endpoint: &EndpointState,
    failed: Option<&ProxyError>,
    now: Instant,
    policy: &Policy,
) {
    let class = match failed {
        None => Classification::Success,
        Some(_) => Classification::Failure,
    };
    endpoint
        .accrual
        .record(class == Classification::Success, now, &policy.accrual);
    endpoint.metrics.attempt(class);
}

/// A request the proxy answered itself with `err`: counted whole, on `route` (with its
/// trace as the latency's exemplar, when the trace is kept).
pub(crate) fn failed(
    route: &RouteMetrics,
    start: Instant,
    err: &ProxyError,
    trace: Option<TraceId>,
) {
    route.request();
    latency(route, start.elapsed(), trace);
    route.response(err.status().as_u16(), Classification::Failure, err.kind());
}

/// A response from `endpoint` whose headers arrived at `answered`: the request and its
/// latency are counted now (with its trace as the exemplar, when the trace is kept), the
/// response when its body ends ([`Completion`]).
pub(crate) fn answered(
    endpoint: &EndpointState,
    start: Instant,
    answered: Instant,
    status: StatusCode,
    class: Classification,
    load: LoadGuard,
    trace: Option<TraceId>,
) -> Completion {
    endpoint.metrics.request();
    latency(&endpoint.metrics, answered - start, trace);
    Completion {
        route: endpoint.metrics.clone(),
        status: status.as_u16(),
        class,
        error: "",
        routed: None,
        trace: None,
        tap: None,
        _load: load,
    }
}

/// The client's latency, with its trace as the bucket's exemplar when the trace is kept.
fn latency(route: &RouteMetrics, took: Duration, trace: Option<TraceId>) {
    match trace {
        None => route.latency(took),
        Some(t) => route.latency_traced(took, t.hex()),
    }
}

/// What to record when a streamed response ends; the endpoint's load is held until then.
pub(crate) struct Completion {
    route: RouteMetrics,
    status: u16,
    class: Classification,
    error: &'static str,
    /// The route's rule, whose callers' view is recorded too.
    routed: Option<Routed>,
    /// The request's spans, which end with the response.
    trace: Option<Box<RequestTrace>>,
    /// Its tap, which ends with the response too.
    tap: Option<Box<Tapped>>,
    _load: LoadGuard,
}

impl Completion {
    /// Also records the response on its route's rule, whose request is counted now.
    pub(crate) fn on_route(&mut self, routed: Routed, latency: std::time::Duration) {
        routed.rule().metrics.request(latency);
        self.routed = Some(routed);
    }

    /// The request's spans end (and are kept or dropped) when the response does.
    pub(crate) fn traced(&mut self, trace: Option<Box<RequestTrace>>) {
        self.trace = trace;
    }

    pub(crate) fn tapped(&mut self, tap: Box<Tapped>) {
        self.tap = Some(tap);
    }

    /// Body bytes on their way to the client, counted only for a tap.
    #[inline]
    pub(crate) fn sent(&mut self, bytes: usize) {
        if let Some(t) = self.tap.as_mut() {
            t.bytes += bytes as u64;
        }
    }

    /// The upstream broke off the body: whatever its status said, the client did not get it.
    pub(crate) fn broken(&mut self) {
        self.class = Classification::Failure;
        self.error = "upstream reset";
    }

    /// The response has ended (with its trailers, when it had any): recorded once.
    pub(crate) fn finish(self, trailers: Option<&HeaderMap>) {
        let class = if trailers.is_some_and(grpc_failed) {
            Classification::Failure
        } else {
            self.class
        };
        self.route.response(self.status, class, self.error);
        if let Some(r) = &self.routed {
            r.rule().metrics.response(class);
        }
        if let Some(t) = self.trace {
            let failed = class == Classification::Failure;
            t.finish(Instant::now(), Some(self.status), failed, self.error);
        }
        if let Some(t) = self.tap {
            let success = class == Classification::Success;
            t.end(Instant::now(), success, trailers, self.error);
        }
    }
}
