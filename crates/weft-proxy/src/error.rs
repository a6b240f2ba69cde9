//! Errors the proxy answers with itself. One place maps each to a status and a `weft-error`
//! value, so no layer invents its own mapping; [`crate::respond`] turns them into answers.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use weft_core::ServiceName;

/// Who a failure is about: whether the client, the proxy or the upstream side caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Downstream,
    Proxy,
    Upstream,
}

/// The `weft-error` phrases that other code matches on, named once.
pub(crate) mod kind {
    pub const UNKNOWN_SERVICE: &str = "unknown service";
    pub const NO_ENDPOINTS: &str = "no endpoints";
    pub const CONNECT_REFUSED: &str = "connect refused";
    pub const CONNECT_TIMEOUT: &str = "connect timeout";
    pub const CONNECT_FAILED: &str = "connect failed";
    pub const NOT_LOCAL: &str = "endpoint not on this node";
    pub const DISCOVERY_UNAVAILABLE: &str = "discovery unavailable";

    /// Errors a proxy answers before any app saw the request: resending it is safe.
    pub const NOT_DELIVERED: &[&str] = &[
        NOT_LOCAL,
        UNKNOWN_SERVICE,
        DISCOVERY_UNAVAILABLE,
        NO_ENDPOINTS,
        CONNECT_REFUSED,
        CONNECT_TIMEOUT,
        CONNECT_FAILED,
    ];
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    #[error("request names no service (no Host or :authority)")]
    MissingAuthority,
    #[error("unknown service {0:?}")]
    UnknownService(String),
    #[error("discovery has not answered for {service}")]
    DiscoveryUnavailable { service: ServiceName },
    #[error("service {service} has no endpoints")]
    NoEndpoints { service: ServiceName },
    #[error("connection refused by {endpoint}")]
    ConnectRefused { endpoint: SocketAddr },
    #[error("connect to {endpoint} timed out after {timeout:?}")]
    ConnectTimeout {
        endpoint: SocketAddr,
        timeout: Duration,
    },
    #[error("connect to {endpoint} failed: {cause}")]
    ConnectFailed { endpoint: SocketAddr, cause: String },
    #[error("upstream {endpoint} reset the request: {cause}")]
    UpstreamReset { endpoint: SocketAddr, cause: String },
    #[error("endpoint {endpoint} of {service} is not on this node")]
    NotLocal {
        service: ServiceName,
        endpoint: String,
    },
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("the client went away before sending its whole request")]
    ClientAborted,
    #[error("every endpoint of {service} is failing; circuit open")]
    CircuitOpen { service: ServiceName },
    #[error("the caller's deadline passed")]
    DeadlineExceeded,
    #[error("no response within {timeout:?}")]
    Timeout { timeout: Duration },
    #[error("attempt to {endpoint} got no response within {timeout:?}")]
    AttemptTimeout {
        endpoint: SocketAddr,
        timeout: Duration,
    },
}

impl From<weft_http::Error> for ProxyError {
    fn from(e: weft_http::Error) -> Self {
        use weft_http::Error as E;
        match e {
            E::ConnectRefused { endpoint } => Self::ConnectRefused { endpoint },
            E::ConnectTimeout { endpoint, timeout } => Self::ConnectTimeout { endpoint, timeout },
            E::ConnectFailed { endpoint, cause } => Self::ConnectFailed { endpoint, cause },
            E::Reset { endpoint, cause } => Self::UpstreamReset { endpoint, cause },
            E::BodyFailed => Self::ClientAborted,
        }
    }
}

impl ProxyError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::MissingAuthority | Self::BadRequest(_) | Self::ClientAborted => {
                StatusCode::BAD_REQUEST
            }
            Self::NotLocal { .. } => StatusCode::FORBIDDEN,
            Self::UnknownService(_)
            | Self::ConnectRefused { .. }
            | Self::ConnectFailed { .. }
            | Self::UpstreamReset { .. } => StatusCode::BAD_GATEWAY,
            Self::NoEndpoints { .. }
            | Self::CircuitOpen { .. }
            | Self::DiscoveryUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::ConnectTimeout { .. }
            | Self::DeadlineExceeded
            | Self::Timeout { .. }
            | Self::AttemptTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The `weft-error` header value: a short, fixed phrase (never client input),
    /// also used as the metrics `error` label, so it stays a bounded set.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::MissingAuthority => "missing authority",
            Self::UnknownService(_) => kind::UNKNOWN_SERVICE,
            Self::NoEndpoints { .. } => kind::NO_ENDPOINTS,
            Self::DiscoveryUnavailable { .. } => kind::DISCOVERY_UNAVAILABLE,
            Self::ConnectRefused { .. } => kind::CONNECT_REFUSED,
            Self::ConnectTimeout { .. } => kind::CONNECT_TIMEOUT,
            Self::ConnectFailed { .. } => kind::CONNECT_FAILED,
            Self::UpstreamReset { .. } => "upstream reset",
            Self::NotLocal { .. } => kind::NOT_LOCAL,
            Self::BadRequest(_) => "bad request",
            Self::CircuitOpen { .. } => "circuit open",
            Self::ClientAborted => "client aborted",
            Self::DeadlineExceeded => "deadline exceeded",
            Self::Timeout { .. } => "timeout",
            Self::AttemptTimeout { .. } => "attempt timeout",
        }
    }

    pub(crate) fn side(&self) -> Side {
        match self {
            Self::MissingAuthority
            | Self::BadRequest(_)
            | Self::NotLocal { .. }
            | Self::ClientAborted => Side::Downstream,
            Self::UnknownService(_)
            | Self::NoEndpoints { .. }
            | Self::DiscoveryUnavailable { .. }
            | Self::CircuitOpen { .. }
            | Self::DeadlineExceeded
            | Self::Timeout { .. } => Side::Proxy,
            _ => Side::Upstream,
        }
    }

    /// The one-line body: the cause, with client-supplied names made printable and short.
    pub(crate) fn body(&self) -> String {
        let mut line: String = self
            .to_string()
            .chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect();
        line.insert_str(0, "weft: ");
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_cannot_break_the_body_line() {
        let e = ProxyError::UnknownService("evil\r\nx-injected: 1".into());
        let body = e.body();
        assert_eq!(body.matches('\n').count(), 1);
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
    }
}
