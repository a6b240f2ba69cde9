//! What a retry needs besides the policy: request bodies kept for replay (up to a cap), a
//! request rebuilt for each attempt, and jittered backoff between attempts.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::request::Parts;
use http::Request;
use http_body::Body as _;
use http_body_util::BodyExt;
use weft_core::ProxyError;

use crate::body::{ClientBody, RequestBody};

/// A request body as a retry can use it: ready now, or being read whole first.
pub enum Kept {
    /// The body, and whether it can be sent again.
    Now(Replay),
    /// A small sized body being read whole. Boxed: most requests have no body, and the
    /// reading state would enlarge every request's future.
    Reading(Pin<Box<dyn Future<Output = Result<Replay, ProxyError>> + Send>>),
}

/// A body, and whether it can be sent again.
pub type Replay = (RequestBody, bool);

/// Keeps a small body whole so it can be sent again; a large or unsized one streams and
/// its request is not retried (after bytes left). A body's size is the length its request
/// declared, which the listener read when it parsed the head.
pub fn keep(body: ClientBody, limit: usize) -> Kept {
    if body.is_end_stream() {
        return Kept::Now((RequestBody::empty(), true));
    }
    match body.size_hint().exact() {
        Some(n) if n <= limit as u64 => Kept::Reading(Box::pin(read_whole(body))),
        _ => Kept::Now((RequestBody::streaming(body), false)),
    }
}

async fn read_whole(body: ClientBody) -> Result<Replay, ProxyError> {
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
