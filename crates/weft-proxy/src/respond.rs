//! The one place that turns a [`ProxyError`] into a response: fitting status, a `weft-error`
//! header naming the cause, and a one-line body; and a failed request's whole answer,
//! counted and logged.

use std::time::Instant;

use http::header::{self, HeaderValue};
use http::Response;
use weft_core::headers::WEFT_ERROR;
use weft_core::trace::TraceId;
use weft_metrics::RouteMetrics;

use crate::body::ProxyBody;
use crate::error::{ProxyError, Side};
use crate::record;

/// A request the proxy answers itself with `err`: logged, counted whole on `route`, and
/// answered.
pub(crate) fn failed(
    route: &RouteMetrics,
    start: Instant,
    err: &ProxyError,
) -> Response<ProxyBody> {
    failed_traced(route, start, err, None)
}

/// As [`failed`], for a request in `trace` when its spans are kept: its latency's exemplar.
pub(crate) fn failed_traced(
    route: &RouteMetrics,
    start: Instant,
    err: &ProxyError,
    trace: Option<TraceId>,
) -> Response<ProxyBody> {
    match err {
        // Someone sending what the mesh refuses on purpose: one line each, for whoever
        // looks into who.
        ProxyError::EgressDenied { .. }
        | ProxyError::LoopDetected { .. }
        | ProxyError::BadOverride(_) => tracing::info!(error = %err, "request refused"),
        _ => tracing::debug!(error = %err, "request failed"),
    }
    record::failed(route, start, err, trace);
    error_response(err)
}

pub(crate) fn error_response(err: &ProxyError) -> Response<ProxyBody> {
    let mut rsp = Response::new(ProxyBody::full(err.body()));
    *rsp.status_mut() = err.status();
    let h = rsp.headers_mut();
    h.insert(WEFT_ERROR, HeaderValue::from_static(err.kind()));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if err.side() == Side::Downstream {
        // After a malformed request the connection's framing cannot be trusted.
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    rsp
}
