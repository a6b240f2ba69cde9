//! One request's spans while the proxy carries it: its own (the outbound's request, the
//! inbound's server span) and one per attempt, held until the response ends and the
//! tracer decides whether they are exported.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::header::HeaderValue;
use http::{HeaderMap, Method, Request, Uri, Version};
use weft_core::headers::{GRPC_STATUS, WEFT_REQUEST_ID};
use weft_core::trace::{self as context, Format, SpanId, TraceId};
use weft_core::ServiceName;

use super::{new_span, Tracer};
use crate::balancer::EndpointState;

/// The longest `weft-request-id` a span names; a longer one is left out.
const MAX_REQUEST_ID_BYTES: usize = 128;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An app's call on this node: the request, and a client span per attempt.
    Outbound,
    /// An outside caller's, at the ingress: as the outbound's.
    Ingress,
    /// A peer's request for an app on this node: a server span.
    Inbound,
}

pub(crate) struct RequestTrace {
    pub(super) tracer: Arc<Tracer>,
    pub(super) kind: Kind,
    pub(super) trace: TraceId,
    /// This proxy's span for the request.
    pub(super) span: SpanId,
    /// The caller's span, when it sent one.
    pub(super) parent: Option<SpanId>,
    pub(super) sampled: bool,
    /// The form the context came in, written onward in the same (W3C for a new trace).
    pub(super) format: Format,
    pub(super) wide: bool,
    pub(super) tracestate: Option<HeaderValue>,
    /// A proxy below kept the trace (its response said so).
    pub(super) kept_below: bool,
    /// The proxy upstream was told this trace is kept here.
    pub(super) told_upstream: bool,
    /// How long the response's headers took: what makes a request slow.
    pub(super) answered_after: Option<Duration>,
    /// Why it was kept when the headers came, if it was.
    pub(super) kept_at_headers: Option<&'static str>,
    /// When the request arrived, on both clocks: spans need the wall clock, and the
    /// monotonic one times everything after.
    pub(super) wall: SystemTime,
    pub(super) started: Instant,
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) version: Version,
    pub(super) service: Option<ServiceName>,
    pub(super) request_id: Option<HeaderValue>,
    pub(super) peer: Option<Arc<str>>,
    pub(super) attempts: Vec<Attempt>,
}

pub(super) struct Attempt {
    pub span: SpanId,
    pub start: Instant,
    pub end: Option<Instant>,
    /// Where it went: the address and the node (shared, so an attempt copies nothing).
    pub endpoint: Arc<EndpointState>,
    pub status: Option<u16>,
    pub error: Option<&'static str>,
    /// Failed as the metrics count it: an error, a 5xx, or a non-zero `grpc-status`.
    pub failed: bool,
    /// The answer's `grpc-status`, when its headers had one (a trailers-only answer).
    pub grpc_status: Option<u32>,
}

/// A request whose response has ended and whose spans are kept: what the exporter turns
/// into OTLP, off the request's way.
pub(crate) struct Finished {
    pub trace: Box<RequestTrace>,
    pub end: Instant,
    pub status: Option<u16>,
    pub failed: bool,
    /// The proxy-made answer's cause (`weft-error`), or what broke the response.
    pub error: &'static str,
    /// Why it was kept: `sampled`, `failed`, `slow`, `downstream`.
    pub kept: &'static str,
    /// Kept only after the response had left: the proxies upstream may have dropped theirs.
    pub partial: bool,
}

impl Finished {
    pub(super) fn len(&self) -> usize {
        1 + self.trace.attempts.len()
    }
}

impl RequestTrace {
    pub(super) fn new(tracer: Arc<Tracer>, kind: Kind, started: Instant) -> Self {
        Self {
            tracer,
            kind,
            trace: TraceId([0; 16]),
            span: new_span(),
            parent: None,
            sampled: false,
            format: Format::W3c,
            wide: true,
            tracestate: None,
            kept_below: false,
            told_upstream: false,
            answered_after: None,
            kept_at_headers: None,
            wall: SystemTime::now() - started.elapsed(),
            started,
            method: Method::GET,
            uri: Uri::default(),
            version: Version::HTTP_11,
            service: None,
            request_id: None,
            peer: None,
            attempts: Vec::new(),
        }
    }

    /// What the span says of the request: read before it is changed for the next hop. The
    /// service, once known.
    pub(crate) fn describe<B>(&mut self, req: &Request<B>, service: Option<&ServiceName>) {
        self.method = req.method().clone();
        self.uri = req.uri().clone();
        self.version = req.version();
        self.service = service.cloned();
        // Bounded: every span of the request repeats it.
        self.request_id = req
            .headers()
            .get(WEFT_REQUEST_ID)
            .filter(|v| v.len() <= MAX_REQUEST_ID_BYTES)
            .cloned();
    }

    pub(crate) fn peer(&mut self, peer: Option<Arc<str>>) {
        self.peer = peer;
    }

    pub(crate) fn trace_id(&self) -> TraceId {
        self.trace
    }

    /// The context an app on this node is handed: this proxy's span as its parent.
    pub(crate) fn to_app(&self, headers: &mut HeaderMap) {
        self.write(headers, self.span, self.parent);
    }

    /// One more attempt, to `endpoint`: its own span, which the next hop sees as its parent.
    pub(crate) fn attempt(
        &mut self,
        headers: &mut HeaderMap,
        endpoint: &Arc<EndpointState>,
        at: Instant,
    ) {
        let span = new_span();
        self.write(headers, span, Some(self.span));
        self.attempts.push(Attempt {
            span,
            start: at,
            end: None,
            endpoint: Arc::clone(endpoint),
            status: None,
            error: None,
            failed: false,
            grpc_status: None,
        });
    }

    /// The latest attempt's answer, failed or not: its status and headers, where a peer
    /// proxy (`from_peer`) may have marked the trace kept.
    pub(crate) fn attempt_answered(
        &mut self,
        at: Instant,
        (status, headers): (u16, &mut HeaderMap),
        from_peer: bool,
        failed: bool,
    ) {
        if from_peer && super::marked(headers) {
            self.kept_below = true;
        }
        let grpc = headers
            .get(GRPC_STATUS)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        if let Some(a) = self.attempts.last_mut() {
            a.end = Some(at);
            a.status = Some(status);
            a.failed = failed;
            a.grpc_status = grpc;
        }
    }

    /// The latest attempt failed with `error`, unanswered.
    pub(crate) fn attempt_failed(&mut self, at: Instant, error: &'static str) {
        if let Some(a) = self.attempts.last_mut() {
            a.end = Some(at);
            a.error = Some(error);
            a.failed = true;
        }
    }

    fn write(&self, headers: &mut HeaderMap, span: SpanId, parent: Option<SpanId>) {
        context::inject(
            headers,
            self.format,
            self.trace,
            span,
            parent,
            self.sampled,
            self.tracestate.as_ref(),
            self.wide,
        );
    }

    /// The response's headers have come: a proxy below may have kept the trace (its mark
    /// goes no further). Whether this proxy keeps it is known as far as the headers tell,
    /// and the node's inbound (outbound: the app's own request) or the proxy upstream
    /// (inbound: told by the mark) keeps it too. The trace, when kept so far: the latency
    /// histogram's exemplar.
    pub(crate) fn answered(&mut self, rsp: &mut HeaderMap, failed: bool) -> Option<TraceId> {
        // An app's response may not say so: only a proxy below keeps a trace for this one,
        // and the outbound read that mark on the attempt's answer.
        super::marked(rsp);
        let took = self.started.elapsed();
        self.answered_after = Some(took);
        if self.sampled {
            return Some(self.trace);
        }
        let tracer = &self.tracer;
        self.kept_at_headers = Some(tracer.keeps(self, failed, took)?);
        match self.kind {
            Kind::Outbound => tracer.remember(self.trace),
            Kind::Inbound => {
                super::mark(rsp);
                self.told_upstream = true;
            }
            Kind::Ingress => {}
        }
        Some(self.trace)
    }

    /// The trace, when a failure answered now would keep it.
    pub(crate) fn keeps_failed(&self) -> Option<TraceId> {
        let took = self.started.elapsed();
        self.tracer.keeps(self, true, took).map(|_| self.trace)
    }

    /// The response has ended at `end` (or the request was given up: an attempt still
    /// out ends here, failed with `error`): the spans go to the exporter if the tracer
    /// keeps them.
    pub(crate) fn finish(
        mut self: Box<Self>,
        end: Instant,
        status: Option<u16>,
        failed: bool,
        error: &'static str,
    ) {
        if let Some(a) = self
            .attempts
            .last_mut()
            .filter(|a| a.end.is_none() && failed)
        {
            a.end = Some(end);
            a.failed = true;
            a.error = Some(error).filter(|e| !e.is_empty());
        }
        // Slow is slow to answer: a long stream is not slow for lasting.
        let took = self
            .answered_after
            .unwrap_or_else(|| end.saturating_duration_since(self.started));
        let tracer = Arc::clone(&self.tracer);
        // Kept at the headers stays kept: the proxy above was told, or the exemplar names
        // this trace, though the memory of kept traces may have moved on since.
        let Some(kept) = tracer.keeps(&self, failed, took).or(self.kept_at_headers) else {
            return;
        };
        if !self.sampled && self.kind == Kind::Outbound {
            tracer.remember(self.trace);
        }
        let partial = !self.sampled
            && self.kind == Kind::Inbound
            && self.parent.is_some()
            && !self.told_upstream;
        tracer.export(Finished {
            trace: self,
            end,
            status,
            failed,
            error,
            kept,
            partial,
        });
    }
}
