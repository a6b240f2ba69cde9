//! Request heads: one parsed from the front of a client connection's buffer, with what it
//! means for the connection (framing, keep-alive, `Expect`, upgrade) and the shapes refused
//! as smuggling; one written for an instance; and the bare refusal of a head that cannot be
//! parsed at all.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header;
use http::{Method, Request, StatusCode, Uri, Version};

use weft_core::headers::WEFT_ERROR;

use super::head::{
    connection_tokens, framing, write_header, write_length, BodyFraming, Framing, Spans,
    MAX_HEADERS,
};

/// A parsed request head and what it means for the connection.
pub struct RequestHead {
    pub request: Request<()>,
    pub framing: Framing,
    /// The client lets the connection stay open after the response.
    pub keep_alive: bool,
    /// The framing was ambiguous (Content-Length beside Transfer-Encoding): whatever the
    /// handler answers, the connection closes after it, so no second request is read.
    pub close_after: bool,
    pub expect_continue: bool,
    pub upgrade: bool,
}

/// Why a request head was refused; each becomes a status and a `weft-error` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooLarge,
    Malformed(&'static str),
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Self::TooLarge => "request head too large",
            Self::Malformed(why) => why,
        }
    }
}

/// Parses one request head from the front of `buf`, taking its bytes out of it.
/// `Ok(None)`: the head is not complete yet.
pub fn parse(buf: &mut BytesMut, max: usize) -> Result<Option<RequestHead>, Refusal> {
    // Uninitialised: zeroing a hundred headers would cost more than parsing a typical head.
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match parsed.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) if len <= max => len,
        Ok(httparse::Status::Complete(_)) => return Err(Refusal::TooLarge),
        Ok(httparse::Status::Partial) if buf.len() >= max => return Err(Refusal::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
        Err(_) => return Err(Refusal::Malformed("malformed request head")),
    };
    // Offsets first: the header slices borrow `buf`, which is about to be split.
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    let method = Method::from_bytes(parsed.method.unwrap_or("").as_bytes())
        .map_err(|_| Refusal::Malformed("bad method"))?;
    let path = at(parsed.path.unwrap_or("").as_bytes());
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut spans = Spans::default();
    spans.fill(parsed.headers, base);
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(path.0..path.0 + path.1))
        .map_err(|_| Refusal::Malformed("bad URI"))?;
    // Room for the headers the proxy adds on the way (Host, deadline, mesh routing).
    let (map, seen) = spans
        .header_map(&head, 4, false)
        .map_err(Refusal::Malformed)?;
    let (framing, close_after) = framing(&map, seen, version).map_err(Refusal::Malformed)?;
    let connection = connection_tokens(&map, seen);
    let keep_alive = match version {
        Version::HTTP_10 => connection.keep_alive,
        _ => !connection.close,
    };
    let expect_continue = version == Version::HTTP_11
        && seen.expect
        && map
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let upgrade =
        version == Version::HTTP_11 && connection.upgrade && map.contains_key(header::UPGRADE);
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = map;
    Ok(Some(RequestHead {
        request,
        framing,
        keep_alive,
        close_after,
        expect_continue,
        upgrade,
    }))
}

/// Writes a request head for an instance into `out`, with the framing its body needs
/// (`exact`: the body's known length). Framing headers the request carries are replaced.
pub fn encode(
    parts: &http::request::Parts,
    body_empty: bool,
    exact: Option<u64>,
    out: &mut Vec<u8>,
) -> BodyFraming {
    let framing = if body_empty {
        BodyFraming::None
    } else if let Some(n) = exact {
        BodyFraming::Length(n)
    } else {
        BodyFraming::Chunked
    };
    // HTTP/1.0 has no chunked framing: such a body goes as HTTP/1.1.
    let v10 = parts.version == Version::HTTP_10 && framing != BodyFraming::Chunked;
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(crate::headers::path_and_query(&parts.uri).as_bytes());
    out.extend_from_slice(if v10 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    for (name, value) in &parts.headers {
        if *name == header::CONTENT_LENGTH || *name == header::TRANSFER_ENCODING {
            continue;
        }
        if v10 && *name == header::CONNECTION {
            continue;
        }
        write_header(out, name, value);
    }
    match framing {
        BodyFraming::Length(n) => write_length(n, out),
        BodyFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        BodyFraming::None if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) => {
            out.extend_from_slice(b"content-length: 0\r\n");
        }
        _ => {}
    }
    if v10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    framing
}

/// A bare answer for a request the proxy could not even parse.
pub fn refusal(refusal: Refusal) -> Vec<u8> {
    let reason = refusal.reason();
    answer_and_close(refusal.status(), reason, &format!("{reason}\n"))
}

/// What a client whose bodiless request got no answer within `idle` is told, before the
/// connection closes (and the work for it is dropped, cancelling it upstream).
pub fn idle_refusal(idle: std::time::Duration) -> Vec<u8> {
    let body = format!("weft: no answer and nothing sent for {}s\n", idle.as_secs());
    answer_and_close(http::StatusCode::GATEWAY_TIMEOUT, "stream idle", &body)
}

/// A whole response the server writes itself, with `weft-error: kind`, then closes.
fn answer_and_close(status: http::StatusCode, kind: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {} {}\r\n{}: {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        WEFT_ERROR.as_str(),
        kind,
        body.len(),
        body
    )
    .into_bytes()
}

/// What an HTTP/2 client with prior knowledge sends first.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether `buf` could be the start of the HTTP/2 preface (h2c on the same port).
pub fn is_h2_preface_start(buf: &[u8]) -> bool {
    let n = buf.len().min(H2_PREFACE.len());
    buf[..n] == H2_PREFACE[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Option<RequestHead>, Refusal> {
        parse(&mut BytesMut::from(raw), 8192)
    }

    #[test]
    fn a_head_in_any_spelling_of_its_names_parses_the_same() {
        let h = head("GET / HTTP/1.1\r\nHOST: a\r\nContent-length: 0\r\nETag: x\r\n\r\n")
            .unwrap()
            .unwrap();
        let headers = h.request.headers();
        assert_eq!(headers[header::HOST], "a");
        assert_eq!(headers[header::CONTENT_LENGTH], "0");
        assert_eq!(headers[header::ETAG], "x");
    }

    #[test]
    fn a_head_parses_with_its_framing_and_leaves_the_body() {
        let mut buf = BytesMut::from(
            "POST /a?b=1 HTTP/1.1\r\nHost: world\r\nContent-Length: 3\r\nX-Y: z\r\n\r\nabc",
        );
        let h = parse(&mut buf, 8192).unwrap().unwrap();
        assert_eq!(h.request.method(), Method::POST);
        assert_eq!(h.request.uri(), "/a?b=1");
        assert_eq!(h.request.headers()["x-y"], "z");
        assert_eq!(h.framing, Framing::Length(3));
        assert!(h.keep_alive && !h.close_after);
        assert_eq!(&buf[..], b"abc");
    }

    #[test]
    fn partial_oversized_and_malformed_heads() {
        assert!(head("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        let big = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(9000));
        assert_eq!(head(&big).err(), Some(Refusal::TooLarge));
        assert!(matches!(
            head("GARBAGE\r\n\r\n"),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            head("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn transfer_encoding_beside_content_length_closes_the_connection() {
        let h = head("POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.close_after);
    }

    #[test]
    fn keep_alive_follows_the_version() {
        assert!(!head("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().keep_alive);
        let h = head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert!(h.unwrap().keep_alive);
        let h = head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!h.unwrap().keep_alive);
    }

    /// Every shape a request could be smuggled in is refused at the head, or framed one way
    /// and the connection closed after it. The end-to-end tests send the same shapes to a
    /// running proxy (`tests/e2e/errors.rs`).
    #[test]
    fn smuggling_shapes_are_refused_or_closed_after() {
        let malformed = [
            ("garbage request line", "GARBAGE\r\n\r\n"),
            (
                "header without a colon",
                "GET / HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n",
            ),
            (
                "space before the colon",
                "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            ),
            (
                "folded header line",
                "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
            ),
            (
                "conflicting lengths",
                "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            ),
            (
                "a list of lengths",
                "POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n",
            ),
            (
                "a signed length",
                "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            ),
            (
                "an empty length",
                "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            ),
            (
                "a length past u64",
                "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            ),
            (
                "a coding other than chunked last",
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            ),
            (
                "an unknown coding",
                "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
            ),
            (
                "chunked in HTTP/1.0",
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            ),
            (
                "chunked twice",
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            ),
            (
                "a coding before chunked",
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
            ),
            (
                "a control character in a value",
                "GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
            ),
            ("a bad method", "G(T / HTTP/1.1\r\n\r\n"),
        ];
        for (what, raw) in malformed {
            assert!(
                matches!(head(raw), Err(Refusal::Malformed(_))),
                "{what}: {:?}",
                head(raw).map(|h| h.map(|h| h.framing))
            );
        }
        // Both framings: Transfer-Encoding wins, and nothing after this request is read.
        let both =
            head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 45\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(both.framing, Framing::Chunked);
        assert!(both.close_after);
        // Repeats of one length are one length.
        let repeated = head("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(repeated.framing, Framing::Length(3));
        assert!(!repeated.close_after);
        // Chunked in any case, with spaces around it, is chunked.
        let spelled = head("POST / HTTP/1.1\r\nTransfer-Encoding:  Chunked \r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(spelled.framing, Framing::Chunked);
    }

    #[test]
    fn a_head_is_bounded_by_size_and_header_count() {
        let at_limit = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(8150));
        assert!(head(&at_limit).unwrap().is_some());
        let over = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(8200));
        assert_eq!(head(&over).err(), Some(Refusal::TooLarge));
        // An unfinished head that has reached the limit will not fit either.
        let unfinished = format!("GET / HTTP/1.1\r\nx: {}", "a".repeat(8200));
        assert_eq!(head(&unfinished).err(), Some(Refusal::TooLarge));
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("x{i}: 1\r\n"))
            .collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(head(&many).err(), Some(Refusal::TooLarge));
        assert_eq!(
            Refusal::TooLarge.status(),
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    #[test]
    fn a_head_says_what_the_connection_must_do() {
        let h = head("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.expect_continue);
        // HTTP/1.0 knows no 100-continue.
        let h = head("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.expect_continue);
        let h = head(
            "GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(h.upgrade && h.keep_alive);
        // `Upgrade` without `Connection: upgrade` asks for nothing.
        let h = head("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.upgrade);
    }

    #[test]
    fn pipelined_heads_come_off_the_buffer_one_at_a_time() {
        let mut buf = BytesMut::from(
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c",
        );
        let a = parse(&mut buf, 8192).unwrap().unwrap();
        let b = parse(&mut buf, 8192).unwrap().unwrap();
        assert_eq!(
            (a.request.uri().path(), b.request.uri().path()),
            ("/a", "/b")
        );
        assert!(parse(&mut buf, 8192).unwrap().is_none());
        assert_eq!(&buf[..], b"GET /c");
    }

    #[test]
    fn a_request_head_for_an_instance_carries_the_framing_its_body_needs() {
        let encode_with = |req: Request<()>, empty: bool, exact: Option<u64>| {
            let (parts, ()) = req.into_parts();
            let mut out = Vec::new();
            let framing = encode(&parts, empty, exact, &mut out);
            (framing, String::from_utf8(out).unwrap())
        };
        // The client's framing headers never pass: the proxy frames what it sends.
        let req = Request::post("/up")
            .header("host", "world")
            .header("transfer-encoding", "chunked")
            .header("content-length", "9")
            .body(())
            .unwrap();
        let (f, text) = encode_with(req, false, Some(5));
        assert_eq!(f, BodyFraming::Length(5));
        assert_eq!(
            text,
            "POST /up HTTP/1.1\r\nhost: world\r\ncontent-length: 5\r\n\r\n"
        );
        let (f, text) = encode_with(Request::post("/up").body(()).unwrap(), false, None);
        assert_eq!(f, BodyFraming::Chunked);
        assert!(
            text.ends_with("transfer-encoding: chunked\r\n\r\n"),
            "{text}"
        );
        // An empty POST says so; an empty GET says nothing.
        let (_, text) = encode_with(Request::post("/").body(()).unwrap(), true, Some(0));
        assert!(text.contains("content-length: 0\r\n"), "{text}");
        let (f, text) = encode_with(Request::get("/").body(()).unwrap(), true, Some(0));
        assert_eq!(
            (f, text.as_str()),
            (BodyFraming::None, "GET / HTTP/1.1\r\n\r\n")
        );
        // HTTP/1.0 stays 1.0 and asks to keep the connection, unless its body needs chunks.
        let mut old = Request::get("/").body(()).unwrap();
        *old.version_mut() = Version::HTTP_10;
        let (_, text) = encode_with(old, true, Some(0));
        assert_eq!(text, "GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n");
        let mut old = Request::post("/").body(()).unwrap();
        *old.version_mut() = Version::HTTP_10;
        let (_, text) = encode_with(old, false, None);
        assert!(text.starts_with("POST / HTTP/1.1\r\n"), "{text}");
    }

    /// Found by fuzzing (fuzz/regressions/h1_request/absolute-form-query-without-a-path):
    /// an absolute-form target with a query and no path was written `GET ? HTTP/1.0`.
    #[test]
    fn an_absolute_target_with_a_query_and_no_path_is_written_from_the_root() {
        let h = head("GET http://world?a=1 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        let (parts, ()) = h.request.into_parts();
        let mut out = Vec::new();
        encode(&parts, true, Some(0), &mut out);
        assert_eq!(out, b"GET /?a=1 HTTP/1.1\r\n\r\n");
        let written = head(std::str::from_utf8(&out).unwrap()).unwrap().unwrap();
        assert_eq!(written.request.uri(), "/?a=1");
    }

    #[test]
    fn a_refusal_is_a_whole_answer_that_closes() {
        let text = String::from_utf8(refusal(Refusal::Malformed("bad method"))).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("\r\nweft-error: bad method\r\n"), "{text}");
        assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{text}"
        );
    }

    #[test]
    fn the_h2_preface_is_told_from_its_first_bytes() {
        assert!(is_h2_preface_start(b"PRI * HT"));
        assert!(is_h2_preface_start(H2_PREFACE));
        assert!(!is_h2_preface_start(b"POST / HTTP/1.1"));
    }

    #[test]
    fn a_connect_names_its_target_in_authority_form() {
        let h = head("CONNECT world:7778 HTTP/1.1\r\nHost: world:7778\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.request.method(), Method::CONNECT);
        assert_eq!(
            h.request.uri().authority().map(|a| a.as_str()),
            Some("world:7778")
        );
        assert_eq!(h.request.uri().path_and_query(), None);
        assert_eq!(h.framing, Framing::Length(0));
    }
}
