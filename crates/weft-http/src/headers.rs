//! Header rules at a proxy's edges: what is hop-by-hop, where the authority comes from,
//! and which request shapes are refused before anything is forwarded.

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Uri, Version};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1), plus the ones
/// proxies conventionally consume.
static HOP_BY_HOP: [HeaderName; 6] = [
    // In this order: `strip_hop_by_hop` marks them present by position.
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, and any named in `Connection`. `te: trailers` survives,
/// since gRPC needs it end to end. With `keep_upgrade`, `Upgrade` and `Connection: upgrade`
/// stay, because a WebSocket handshake must reach the instance.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names says which are here: most messages carry none of them, or
    // only `Connection`, and a removal costs a hashed lookup each.
    let mut present = [false; 6];
    let (mut te, mut expect) = (false, false);
    for name in headers.keys() {
        // One string match per name (names are stored lower-case): cheaper than comparing
        // each against eight `HeaderName`s.
        match name.as_str() {
            "connection" => present[0] = true,
            "keep-alive" => present[1] = true,
            "proxy-connection" => present[2] = true,
            "proxy-authorization" => present[3] = true,
            "transfer-encoding" => present[4] = true,
            "upgrade" => present[5] = true,
            "te" => te = true,
            "expect" => expect = true,
            _ => {}
        }
    }
    let kept =
        |name: &HeaderName| keep_upgrade && (name == header::UPGRADE || name == header::CONNECTION);
    // Headers the `Connection` value lists go too; the hop-by-hop ones among them (and the
    // `close` option) are dealt with below, without a lookup each.
    let connection = present[0];
    if let Some(list) = connection
        .then(|| headers.get(header::CONNECTION).cloned())
        .flatten()
    {
        for name in list.to_str().unwrap_or("").split(',').map(str::trim) {
            let known = name.is_empty()
                || name.eq_ignore_ascii_case("close")
                || HOP_BY_HOP
                    .iter()
                    .any(|h| name.eq_ignore_ascii_case(h.as_str()));
            if !known {
                headers.remove(name);
            }
        }
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, here)| *here) {
        if !kept(name) {
            headers.remove(name);
        }
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if te {
        let te_trailers = headers.get_all(header::TE).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            })
        });
        headers.remove(header::TE);
        if te_trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }
    // The proxy answers 100-continue itself as soon as it starts reading the body.
    if expect {
        headers.remove(header::EXPECT);
    }
}

/// A WebSocket (or other) upgrade request: HTTP/1.1 with `Connection: upgrade`.
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req.headers().get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// The authority a request is addressed to: absolute-form URI first (what `http_proxy`
/// clients send, and HTTP/2's `:authority`), then the `Host` header.
pub fn authority<B>(req: &Request<B>) -> Option<&str> {
    if let Some(a) = req.uri().authority() {
        return Some(a.as_str());
    }
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
}

/// Refuses shapes that let a request mean two things to two parsers (request smuggling).
pub fn check_framing<B>(req: &Request<B>) -> Result<(), &'static str> {
    // One pass over the headers: a lookup per rule would hash names that are mostly absent.
    let (mut te, mut hosts, mut conflict) = (false, 0u32, false);
    let mut length: Option<&HeaderValue> = None;
    for (name, value) in req.headers() {
        if name == header::TRANSFER_ENCODING {
            te = true;
        } else if name == header::CONTENT_LENGTH {
            match length {
                Some(first) => conflict |= value != first,
                None => {
                    conflict |= value.to_str().map_or(true, |s| s.contains(','));
                    length = Some(value);
                }
            }
        } else if name == header::HOST {
            hosts += 1;
        }
    }
    if te && length.is_some() {
        return Err("both Transfer-Encoding and Content-Length");
    }
    if conflict {
        return Err("conflicting Content-Length");
    }
    if hosts > 1 {
        return Err("more than one Host header");
    }
    Ok(())
}

/// The request's path and query as an origin-form target: `/` when there is none, and
/// the root's when an absolute URI has a query but no path (`http://world?a=1` → `/?a=1`:
/// `?a=1` alone is no target an instance, or HTTP/2's `:path`, takes).
pub fn path_and_query(uri: &Uri) -> Cow<'_, str> {
    match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("") => Cow::Borrowed("/"),
        Some(pq) if pq.starts_with('?') => Cow::Owned(format!("/{pq}")),
        Some(pq) => Cow::Borrowed(pq),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_listed_headers_are_removed_and_te_trailers_kept() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "close, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        h.insert(header::TE, "trailers, gzip".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        strip_hop_by_hop(&mut h, false);
        assert!(!h.contains_key("x-secret"));
        assert!(!h.contains_key(header::CONNECTION));
        assert!(!h.contains_key(header::TRANSFER_ENCODING));
        assert_eq!(h[header::TE], "trailers");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn each_hop_by_hop_header_is_removed_alone() {
        for name in HOP_BY_HOP.iter().chain([&header::EXPECT]) {
            let mut h = HeaderMap::new();
            h.insert(name.clone(), "x".parse().unwrap());
            h.insert("x-kept", "1".parse().unwrap());
            strip_hop_by_hop(&mut h, false);
            assert!(!h.contains_key(name), "{name} survived");
            assert!(h.contains_key("x-kept"), "{name}: took x-kept with it");
        }
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let check = |headers: &[(&str, &str)]| {
            let mut req = Request::builder();
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            check_framing(&req.body(()).unwrap())
        };
        let both = Err("both Transfer-Encoding and Content-Length");
        let conflicting = Err("conflicting Content-Length");
        let te = ("transfer-encoding", "chunked");
        assert_eq!(check(&[("content-length", "3"), te]), both);
        // The rules are checked in a fixed order, whatever order the headers come in.
        assert_eq!(
            check(&[te, ("content-length", "3"), ("content-length", "4")]),
            both
        );
        assert_eq!(
            check(&[("content-length", "3"), ("content-length", "4")]),
            conflicting
        );
        assert_eq!(check(&[("content-length", "3, 3")]), conflicting);
        assert_eq!(
            check(&[("host", "a"), ("content-length", "1,2"), ("host", "b")]),
            conflicting
        );
        assert_eq!(
            check(&[("host", "a"), ("host", "b")]),
            Err("more than one Host header")
        );
        assert_eq!(
            check(&[("content-length", "3"), ("content-length", "3")]),
            Ok(())
        );
        assert_eq!(check(&[("content-length", "3"), ("host", "a"), te]), both);
        assert_eq!(check(&[("host", "a"), ("content-length", "3")]), Ok(()));
    }
}
