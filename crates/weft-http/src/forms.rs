//! A request put in the form the protocol it goes out in expects: HTTP/2 carries the
//! authority in the URI (`:authority`), HTTP/1.1 sends origin-form with `Host`. Each keeps
//! what is already in shape (the path is a shared slice, `Host` stays when it agrees).

use http::header::{HeaderValue, HOST};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Uri, Version};

use crate::headers::path_and_query;

/// For HTTP/2: `authority` and scheme in the URI, no `Host`.
pub fn to_h2<B>(req: &mut Request<B>, authority: &str) -> Result<(), &'static str> {
    let mut uri = std::mem::take(req.uri_mut()).into_parts();
    uri.scheme = Some(Scheme::HTTP);
    if uri.authority.as_ref().map(Authority::as_str) != Some(authority) {
        uri.authority = Some(Authority::try_from(authority).map_err(|_| "invalid authority")?);
    }
    let rooted = uri
        .path_and_query
        .as_ref()
        .is_some_and(|p| p.as_str().starts_with('/') || p.as_str() == "*");
    if !rooted {
        let pq = uri.path_and_query.as_ref().map_or("", PathAndQuery::as_str);
        let pq = PathAndQuery::try_from(format!("/{pq}")).map_err(|_| "invalid path")?;
        uri.path_and_query = Some(pq);
    }
    *req.uri_mut() = Uri::from_parts(uri).map_err(|_| "invalid URI")?;
    *req.version_mut() = Version::HTTP_2;
    req.headers_mut().remove(HOST);
    Ok(())
}

/// For HTTP/1.x: origin-form with `Host: authority` (an absolute-form authority wins over
/// the client's `Host`); HTTP/1.0 when the client spoke it (`orig`), else HTTP/1.1.
pub fn to_h1<B>(req: &mut Request<B>, authority: &str, orig: Version) -> Result<(), &'static str> {
    // An HTTP/1 client's origin-form request (the usual case) is already in shape.
    if req.uri().authority().is_some() || req.uri().path_and_query().is_none() {
        let pq: Uri = path_and_query(req.uri())
            .parse()
            .map_err(|_| "invalid path")?;
        *req.uri_mut() = pq;
    }
    *req.version_mut() = if orig == Version::HTTP_10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    if req.headers().get(HOST).map(HeaderValue::as_bytes) != Some(authority.as_bytes()) {
        let host = HeaderValue::from_str(authority).map_err(|_| "invalid authority")?;
        req.headers_mut().insert(HOST, host);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absolute_form_request_becomes_origin_form_with_host_for_http1() {
        let mut req = Request::get("http://world:7778/a?b=1").body(()).unwrap();
        to_h1(&mut req, "world:7778", Version::HTTP_11).unwrap();
        assert_eq!(req.uri(), "/a?b=1");
        assert_eq!(req.headers()[HOST], "world:7778");
        assert_eq!(req.version(), Version::HTTP_11);
        // Found by fuzzing (fuzz/regressions/h1_request/absolute-form-query-without-a-path):
        // a query with no path was sent as `GET ?a=1`, which no instance takes.
        let mut req = Request::get("http://world?a=1").body(()).unwrap();
        to_h1(&mut req, "world", Version::HTTP_11).unwrap();
        assert_eq!(req.uri(), "/?a=1");
        let mut old = Request::get("/").body(()).unwrap();
        *old.version_mut() = Version::HTTP_10;
        to_h1(&mut old, "world", Version::HTTP_10).unwrap();
        assert_eq!(old.version(), Version::HTTP_10);
    }

    #[test]
    fn http2_carries_the_authority_in_the_uri_and_no_host() {
        let mut req = Request::get("/a").header(HOST, "world").body(()).unwrap();
        to_h2(&mut req, "world").unwrap();
        assert_eq!(req.uri(), "http://world/a");
        assert!(!req.headers().contains_key(HOST));
        assert_eq!(req.version(), Version::HTTP_2);
        // A query with no path goes with the root's: `?a=1` alone is no `:path`.
        let mut req = Request::get("http://world?a=1").body(()).unwrap();
        to_h2(&mut req, "world").unwrap();
        assert_eq!(req.uri(), "http://world/?a=1");
        let mut bad = Request::get("/").body(()).unwrap();
        assert_eq!(to_h2(&mut bad, "bad authority"), Err("invalid authority"));
        assert_eq!(
            to_h1(&mut bad, "bad\nhost", Version::HTTP_11),
            Err("invalid authority")
        );
    }
}
