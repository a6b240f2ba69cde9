//! Errors the proxy answers with itself. One place maps each to a status and a `weft-error`
//! value, so no layer invents its own mapping; `respond` turns them into answers.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use weft_core::ServiceName;
use weft_http::Error as Upstream;

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
    pub const UPSTREAM_REFUSED: &str = "upstream refused";
    pub const OVERLOADED: &str = "overloaded";
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
        UPSTREAM_REFUSED,
        OVERLOADED,
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
    /// The service has routes, and none matches the request (Gateway API answers 404).
    #[error("no route of service {service} matches this request")]
    NoRoute { service: ServiceName },
    /// The transport could not connect, or the exchange broke. A failure of the client's
    /// own body becomes [`ProxyError::ClientAborted`] on the way in (`From`).
    #[error(transparent)]
    Upstream(Upstream),
    #[error("endpoint {endpoint} of {service} is not on this node")]
    NotLocal {
        service: ServiceName,
        endpoint: String,
    },
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// A `CONNECT` to a bare name that is no mesh service (one with a dot is an egress
    /// question: [`ProxyError::EgressDenied`]).
    #[error("{target:?} is not a service in the mesh; CONNECT reaches mesh services and listed hosts only")]
    NotInMesh { target: String },
    /// A host outside the mesh that `egress.hosts` does not list (or not this way).
    #[error("{target:?} is no mesh service, and egress to it is not listed: {why}")]
    EgressDenied { target: String, why: &'static str },
    /// A `CONNECT` to a port its service is not reached on.
    #[error("service {service} has no port {port}")]
    NoSuchPort { service: ServiceName, port: u16 },
    /// A request inside a tunnel addressed to another service than the tunnel's.
    #[error("this tunnel is for {service}, not {authority:?}")]
    Misdirected {
        service: ServiceName,
        authority: String,
    },
    /// At the ingress: no host or route there takes the request.
    #[error("no ingress route takes requests for {host:?} here")]
    NoIngressRoute { host: String },
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
    /// The request has crossed as many proxies as `context.max_hops` allows: it is looping.
    #[error("this request has made {hops} proxy hops, the most context.max_hops allows; it is looping through the mesh")]
    LoopDetected { hops: u32 },
    /// A `weft-ctx-override` from a trusted source that cannot be followed.
    #[error("{0}")]
    BadOverride(String),
    /// A caller whose identity the proxy knows asked for what that identity may not do.
    #[error("permission denied: {0}")]
    PermissionDenied(&'static str),
    /// The listener had its most requests in flight: turned away before anything was done.
    #[error("this proxy has {limit} requests in flight, its most (http.max_requests_in_flight)")]
    Overloaded { limit: usize },
}

impl From<Upstream> for ProxyError {
    fn from(e: Upstream) -> Self {
        match e {
            Upstream::BodyFailed => Self::ClientAborted,
            e => Self::Upstream(e),
        }
    }
}

impl ProxyError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::MissingAuthority
            | Self::BadRequest(_)
            | Self::BadOverride(_)
            | Self::ClientAborted => StatusCode::BAD_REQUEST,
            Self::NotLocal { .. }
            | Self::NotInMesh { .. }
            | Self::NoSuchPort { .. }
            | Self::EgressDenied { .. }
            | Self::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Self::Misdirected { .. } => StatusCode::MISDIRECTED_REQUEST,
            Self::LoopDetected { .. } => StatusCode::LOOP_DETECTED,
            Self::NoRoute { .. } | Self::NoIngressRoute { .. } => StatusCode::NOT_FOUND,
            Self::Upstream(Upstream::BodyFailed) => StatusCode::BAD_REQUEST,
            Self::Upstream(Upstream::ConnectTimeout { .. }) => StatusCode::GATEWAY_TIMEOUT,
            Self::UnknownService(_) | Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::NoEndpoints { .. }
            | Self::CircuitOpen { .. }
            | Self::DiscoveryUnavailable { .. }
            | Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::DeadlineExceeded | Self::Timeout { .. } | Self::AttemptTimeout { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
        }
    }

    /// The `weft-error` header value: a short, fixed phrase (never client input),
    /// also used as the metrics `error` label, so it stays a bounded set.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::MissingAuthority => "missing authority",
            Self::UnknownService(_) => kind::UNKNOWN_SERVICE,
            Self::NoEndpoints { .. } => kind::NO_ENDPOINTS,
            Self::NoRoute { .. } | Self::NoIngressRoute { .. } => "no route",
            Self::DiscoveryUnavailable { .. } => kind::DISCOVERY_UNAVAILABLE,
            Self::Upstream(Upstream::ConnectRefused { .. }) => kind::CONNECT_REFUSED,
            Self::Upstream(Upstream::ConnectTimeout { .. }) => kind::CONNECT_TIMEOUT,
            Self::Upstream(Upstream::ConnectFailed { .. }) => kind::CONNECT_FAILED,
            Self::Upstream(Upstream::Reset { .. }) => "upstream reset",
            Self::Upstream(Upstream::Refused { .. }) => kind::UPSTREAM_REFUSED,
            Self::Upstream(Upstream::BodyFailed) => "client aborted",
            Self::NotLocal { .. } => kind::NOT_LOCAL,
            Self::BadRequest(_) => "bad request",
            Self::NotInMesh { .. } => "not a mesh service",
            Self::NoSuchPort { .. } => "no such port",
            Self::EgressDenied { .. } => "egress denied",
            Self::Misdirected { .. } => "misdirected request",
            Self::CircuitOpen { .. } => "circuit open",
            Self::ClientAborted => "client aborted",
            Self::DeadlineExceeded => "deadline exceeded",
            Self::Timeout { .. } => "timeout",
            Self::AttemptTimeout { .. } => "attempt timeout",
            Self::Overloaded { .. } => kind::OVERLOADED,
            Self::LoopDetected { .. } => "loop detected",
            Self::BadOverride(_) => "bad override",
            Self::PermissionDenied(_) => "permission denied",
        }
    }

    pub(crate) fn side(&self) -> Side {
        match self {
            Self::MissingAuthority
            | Self::BadRequest(_)
            | Self::NotLocal { .. }
            | Self::NotInMesh { .. }
            | Self::NoSuchPort { .. }
            | Self::EgressDenied { .. }
            | Self::Misdirected { .. }
            | Self::BadOverride(_)
            | Self::PermissionDenied(_)
            | Self::ClientAborted
            | Self::Upstream(Upstream::BodyFailed) => Side::Downstream,
            Self::UnknownService(_)
            | Self::NoEndpoints { .. }
            | Self::NoRoute { .. }
            | Self::NoIngressRoute { .. }
            | Self::DiscoveryUnavailable { .. }
            | Self::CircuitOpen { .. }
            | Self::DeadlineExceeded
            | Self::Timeout { .. }
            | Self::LoopDetected { .. }
            | Self::Overloaded { .. } => Side::Proxy,
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

    #[test]
    fn a_transport_failure_is_answered_by_what_went_wrong() {
        let endpoint = SocketAddr::from(([127, 0, 0, 1], 1));
        let cases = [
            (
                Upstream::ConnectRefused { endpoint },
                502,
                "connect refused",
            ),
            (
                Upstream::ConnectTimeout {
                    endpoint,
                    timeout: Duration::from_secs(1),
                },
                504,
                "connect timeout",
            ),
            (
                Upstream::Reset {
                    endpoint,
                    cause: "eof".into(),
                },
                502,
                "upstream reset",
            ),
            (
                Upstream::Refused {
                    endpoint,
                    cause: "REFUSED_STREAM".into(),
                },
                502,
                "upstream refused",
            ),
            // The client's own body failing is the client's doing, not the endpoint's.
            (Upstream::BodyFailed, 400, "client aborted"),
        ];
        for (upstream, status, kind) in cases {
            let e = ProxyError::from(upstream);
            assert_eq!((e.status().as_u16(), e.kind()), (status, kind), "{e}");
            assert_eq!(e.side() == Side::Downstream, status == 400, "{e}");
        }
    }
}
