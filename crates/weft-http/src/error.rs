//! Why the transport could not complete an exchange, and the request handed back when it
//! never left, so the caller can send it elsewhere whatever its body.

use std::net::SocketAddr;
use std::time::Duration;

/// The error type of every body the transport reads or writes.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connection refused by {endpoint}")]
    ConnectRefused { endpoint: SocketAddr },
    #[error("connect to {endpoint} timed out after {timeout:?}")]
    ConnectTimeout {
        endpoint: SocketAddr,
        timeout: Duration,
    },
    #[error("connect to {endpoint} failed: {cause}")]
    ConnectFailed { endpoint: SocketAddr, cause: String },
    /// An established connection failed mid-exchange.
    #[error("upstream {endpoint} reset the request: {cause}")]
    Reset { endpoint: SocketAddr, cause: String },
    /// The upstream turned the request away unprocessed (HTTP/2's REFUSED_STREAM, or a
    /// stream past its GOAWAY): it may go again, whatever its method.
    #[error("upstream {endpoint} refused the request unprocessed: {cause}")]
    Refused { endpoint: SocketAddr, cause: String },
    /// The request's own body failed while it was being sent: the client's doing.
    #[error("the request body failed while it was sent")]
    BodyFailed,
}

impl Error {
    pub(crate) fn reset(endpoint: SocketAddr, cause: impl std::fmt::Display) -> Self {
        Self::Reset {
            endpoint,
            cause: cause.to_string(),
        }
    }

    /// A request HTTP/2 would not send (the connection closing, or past the peer's GOAWAY):
    /// nothing of it left, so it counts as refused unprocessed.
    pub(crate) fn unsent(endpoint: SocketAddr, e: &h2::Error) -> Self {
        // h2 refusing the request itself (a malformed one) would refuse it again.
        if !(e.is_io() || e.is_go_away() || e.is_reset()) {
            return Self::reset(endpoint, e);
        }
        Self::Refused {
            endpoint,
            cause: format!("not sent: {e}"),
        }
    }

    /// A failed HTTP/2 exchange: refused unprocessed (RFC 9113, 8.7), or reset.
    pub(crate) fn from_h2(endpoint: SocketAddr, e: &h2::Error) -> Self {
        let refused =
            e.reason() == Some(h2::Reason::REFUSED_STREAM) || (e.is_go_away() && e.is_remote());
        if refused {
            return Self::Refused {
                endpoint,
                cause: e.to_string(),
            };
        }
        Self::reset(endpoint, e)
    }

    /// A failed exchange on an established hyper connection.
    pub(crate) fn from_hyper(endpoint: SocketAddr, e: &hyper::Error) -> Self {
        if e.is_user() {
            return Self::BodyFailed;
        }
        Self::reset(endpoint, e)
    }
}

/// A request that failed; `request` is handed back when it never left (its connection could
/// not be made, or was found dead before anything was written). Boxed: it is rare, and
/// every attempt's result has room for it.
pub struct SendError<B> {
    pub error: Error,
    pub request: Option<Box<http::Request<B>>>,
}

impl<B> From<Error> for SendError<B> {
    fn from(error: Error) -> Self {
        Self {
            error,
            request: None,
        }
    }
}

impl<B> std::fmt::Debug for SendError<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendError")
            .field("error", &self.error)
            .field("handed_back", &self.request.is_some())
            .finish()
    }
}
