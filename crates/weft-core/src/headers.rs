//! Header names weft reads and writes on the wire (see shared/DESIGN.md, "Names"), and the
//! reading of `weft-dst-service`, whose value has one home with its name.

use http::header::HeaderName;

/// Set on every response the proxy makes itself; names the cause in a few words.
pub const WEFT_ERROR: HeaderName = HeaderName::from_static("weft-error");
/// Where an outbound proxy routed a request, for the peer's inbound listener:
/// `service;endpoint=ip:port` (the inbound side delivers only to that endpoint), or just
/// `service` (it picks a local instance). One header, so the hop's HPACK and the inbound
/// side's removal handle one name for both.
pub const WEFT_DST_SERVICE: HeaderName = HeaderName::from_static("weft-dst-service");
/// The parameter of `weft-dst-service` that names the endpoint.
pub const ENDPOINT_PARAM: &str = "endpoint";
/// `HTTP/1.0` when that is what the client spoke before the proxy-to-proxy hop upgraded it to
/// HTTP/2; absent for HTTP/1.1 and HTTP/2.
pub const WEFT_ORIG_PROTO: HeaderName = HeaderName::from_static("weft-orig-proto");
/// The request's deadline as Unix time in microseconds: what apps receive, and may copy onto
/// the calls they make for it.
pub const WEFT_CTX_DEADLINE: HeaderName = HeaderName::from_static("weft-ctx-deadline");
/// The time left until the deadline, in milliseconds: how the deadline crosses the
/// proxy-to-proxy hop (no clock shared between nodes is needed, and a repeated value costs
/// HPACK one byte).
pub const WEFT_CTX_TIMEOUT: HeaderName = HeaderName::from_static("weft-ctx-timeout");
/// A staging reroute, `SERVICE => SERVICE[; ...]`: honoured from apps on the node and from
/// peers named in config, dropped from anyone else (see [`crate::context`]).
pub const WEFT_CTX_OVERRIDE: HeaderName = HeaderName::from_static("weft-ctx-override");
/// The proxy hops a request has made; past the limit it is answered `508` as a loop.
pub const WEFT_CTX_HOPS: HeaderName = HeaderName::from_static("weft-ctx-hops");
/// One request's id, carried on every hop; apps forward it like the `weft-ctx-*` headers.
/// The ingress always makes a new one (an outside caller's is not believed); an outbound
/// with tracing on makes one for an app's request that has none. Logs and spans name it.
pub const WEFT_REQUEST_ID: HeaderName = HeaderName::from_static("weft-request-id");
/// gRPC's status, in trailers (or headers, for a trailers-only answer).
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// The service a `weft-dst-service` value names, and the endpoint when the peer chose one;
/// `None` when it is malformed.
pub fn dst_service(value: &str) -> Option<(&str, Option<&str>)> {
    // Byte searches and ASCII trims: `split_once` and `trim` set up for any pattern and
    // any Unicode space, which cost more than these few bytes.
    let Some(semi) = value.bytes().position(|b| b == b';') else {
        return Some((value.trim_ascii(), None));
    };
    let (service, param) = (&value[..semi], &value[semi + 1..]);
    let eq = param.bytes().position(|b| b == b'=')?;
    let (name, endpoint) = (&param[..eq], &param[eq + 1..]);
    (name.trim_ascii() == ENDPOINT_PARAM)
        .then_some((service.trim_ascii(), Some(endpoint.trim_ascii())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_names_a_service_and_perhaps_an_endpoint() {
        assert_eq!(dst_service("world"), Some(("world", None)));
        assert_eq!(
            dst_service("world;endpoint=127.0.0.2:80"),
            Some(("world", Some("127.0.0.2:80")))
        );
        assert_eq!(
            dst_service("world; endpoint = 127.0.0.2:80"),
            Some(("world", Some("127.0.0.2:80")))
        );
        assert_eq!(dst_service("world;node=a"), None);
        assert_eq!(dst_service("world;endpoint"), None);
    }
}
