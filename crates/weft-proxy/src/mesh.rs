//! The mesh's own request headers at a proxy's edges: removed from whatever arrives (only
//! the mesh may set them), and `weft-dst-service`, the route a peer proxy chose, read.

use http::header::{HeaderMap, HeaderName};
use weft_core::headers::{
    ENDPOINT_PARAM, WEFT_CTX_DEADLINE, WEFT_CTX_TIMEOUT, WEFT_DST_SERVICE, WEFT_ORIG_PROTO,
};

/// Removes the mesh's own request headers: routing headers a client must not be able to set
/// on the mesh's behalf, and the deadline's, which each hop has read and writes afresh.
pub(crate) fn strip(headers: &mut HeaderMap) {
    // One pass says which are here (apps send none, a peer two or three): a removal costs a
    // hashed lookup each.
    let mut present = [false; 4];
    for name in headers.keys() {
        let name = name.as_str();
        // Compared as strings: a length differs first, where `HeaderName`s call memcmp.
        if name.starts_with("weft-") {
            if let Some(i) = MESH.iter().position(|m| m.as_str() == name) {
                present[i] = true;
            }
        }
    }
    for (name, _) in MESH.iter().zip(present).filter(|(_, here)| *here) {
        headers.remove(name);
    }
}

static MESH: [HeaderName; 4] = [
    WEFT_DST_SERVICE,
    WEFT_ORIG_PROTO,
    WEFT_CTX_DEADLINE,
    WEFT_CTX_TIMEOUT,
];

/// The service a `weft-dst-service` value names, and the endpoint when the peer chose one;
/// `None` when it is malformed.
pub(crate) fn dst_service(value: &str) -> Option<(&str, Option<&str>)> {
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
