//! Upstream connections. HTTP/1.1 goes through a lean per-endpoint pool; HTTP/2 shares one
//! multiplexed connection per address — the proxy-to-proxy hop and h2 instances alike.
//!
//! - [`connect`]: TCP connect with a timeout and errors that name the endpoint (TLS slot).
//! - [`h1`]: the HTTP/1.1 pool and one-off upgrade connections.
//! - [`h2`]: shared HTTP/2 connections.

pub mod connect;
pub mod h1;
pub mod h2;

use std::sync::Arc;
use std::time::Duration;

/// Closes a pool's idle connections now and then, until the pool itself is gone.
fn spawn_reaper<P: Send + Sync + 'static>(pool: &Arc<P>, idle_timeout: Duration, reap: fn(&P)) {
    let weak = Arc::downgrade(pool);
    let every = (idle_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(10));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(pool) = weak.upgrade() else { return };
            reap(&pool);
        }
    });
}

/// A request that failed; `request` is handed back when it never left (connect failed), so
/// it can be sent elsewhere whatever its body. Boxed: it is rare, and every attempt's result
/// has room for this error and is moved through several layers.
pub struct SendError {
    pub error: weft_core::ProxyError,
    pub request: Option<Box<http::Request<crate::body::RequestBody>>>,
}

impl From<weft_core::ProxyError> for SendError {
    fn from(error: weft_core::ProxyError) -> Self {
        Self {
            error,
            request: None,
        }
    }
}

/// Maps a failed exchange on an established connection to the error the client sees.
/// A failure of the request body we were sending is the client's doing, not the endpoint's.
pub fn upstream_error(endpoint: std::net::SocketAddr, e: &hyper::Error) -> weft_core::ProxyError {
    if e.is_user() {
        return weft_core::ProxyError::ClientAborted;
    }
    reset(endpoint, e)
}

/// An established connection to `endpoint` failed mid-exchange, for `cause`.
fn reset(endpoint: std::net::SocketAddr, cause: impl std::fmt::Display) -> weft_core::ProxyError {
    weft_core::ProxyError::UpstreamReset {
        endpoint,
        cause: cause.to_string(),
    }
}
