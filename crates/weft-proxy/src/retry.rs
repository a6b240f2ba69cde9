//! What a retry needs besides the policy: request bodies kept for replay (up to a cap), a
//! request rebuilt for each attempt, and jittered backoff between attempts.

use std::time::Duration;

use http::request::Parts;
use http::{HeaderMap, Request};
use http_body::Body as _;
use http_body_util::BodyExt;
use weft_core::ProxyError;

use crate::body::{ClientBody, RequestBody};

/// Keeps a small body whole so it can be sent again; a large or unsized one streams and
/// its request is not retried (after bytes left). Returns the body and whether it replays.
pub async fn buffer(
    body: ClientBody,
    headers: &HeaderMap,
    limit: usize,
) -> Result<(RequestBody, bool), ProxyError> {
    if body.is_end_stream() {
        return Ok((RequestBody::empty(), true));
    }
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n <= limit as u64 => {
            let collected = body
                .collect()
                .await
                .map_err(|_| ProxyError::BadRequest("the client's body ended early"))?;
            let trailers = collected.trailers().cloned();
            let data = collected.to_bytes();
            Ok((
                RequestBody::Buffered {
                    data: (!data.is_empty()).then_some(data),
                    trailers,
                },
                true,
            ))
        }
        _ => Ok((RequestBody::streaming(body), false)),
    }
}

/// A new request for one attempt, from the original's parts and a body.
pub fn rebuild(parts: &Parts, body: RequestBody) -> Request<RequestBody> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    req
}

/// Full jitter over an exponential backoff: attempt 1 waits up to `base`, then 2×, 4× …
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let ceiling = base
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(max);
    ceiling.mul_f64(fastrand::f64())
}
