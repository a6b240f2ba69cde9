//! Response heads: one written for a client (its framing chosen from the body, the request
//! and the connection), and one parsed from an instance's connection.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header;
use http::{Method, Response, StatusCode, Version};

use super::head::{
    bodiless, connection_tokens, framing, opens_tunnel, write_header, write_length, BodyFraming,
    Framing, Spans, MAX_HEADERS,
};

/// Writes the response head into `out` and says how its body is framed. Connection-level
/// headers the response carries are replaced by the ones this connection needs.
pub fn encode<B>(
    rsp: &Response<B>,
    exact_len: Option<u64>,
    request_method: &Method,
    request_version: Version,
    keep_alive: &mut bool,
    out: &mut Vec<u8>,
) -> BodyFraming {
    let status = rsp.status();
    let headers = rsp.headers();
    // The connection changes hands after this head: it says nothing of keeping it.
    let switching =
        status == StatusCode::SWITCHING_PROTOCOLS || opens_tunnel(request_method, status);
    let declared = headers.get(header::CONTENT_LENGTH);
    let framing = if bodiless(request_method, status) {
        BodyFraming::None
    } else if let Some(n) = declared
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .and_then(|s| s.parse().ok())
    {
        BodyFraming::Length(n)
    } else if let Some(n) = exact_len {
        BodyFraming::Length(n)
    } else if request_version == Version::HTTP_11 {
        BodyFraming::Chunked
    } else {
        *keep_alive = false;
        BodyFraming::Close
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if *name == header::CONNECTION && !switching {
            // An answer that asks for the connection to close after it gets its way.
            let close = value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
            if close {
                *keep_alive = false;
            }
            continue;
        }
        if *name == header::TRANSFER_ENCODING {
            continue;
        }
        // A HEAD or 304 answer keeps the length the full response would have had; a
        // tunnel's answer has none.
        if *name == header::CONTENT_LENGTH
            && (!matches!(framing, BodyFraming::Length(_) | BodyFraming::None)
                || opens_tunnel(request_method, status))
        {
            continue;
        }
        write_header(out, name, value);
    }
    match framing {
        BodyFraming::Length(n) if declared.is_none() => {
            write_length(n, out);
        }
        BodyFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    if !switching {
        if !*keep_alive {
            out.extend_from_slice(b"connection: close\r\n");
        } else if request_version == Version::HTTP_10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    framing
}

/// Largest response head accepted from an instance.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// A parsed response head and how its body is framed.
pub struct ResponseHead {
    pub response: Response<()>,
    pub framing: Framing,
    /// The instance lets the connection be used again after this response.
    pub keep_alive: bool,
}

/// Parses one response head from the front of `buf`, taking its bytes out of it; `Ok(None)`
/// until it is complete. `method` is the request's: a HEAD response has no body.
pub fn parse(buf: &mut BytesMut, method: &Method) -> Result<Option<ResponseHead>, &'static str> {
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let parsing = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut headers,
    );
    // The limit holds for a head that came whole in one read as for one still arriving.
    let len = match parsing {
        Ok(httparse::Status::Complete(len)) if len <= MAX_RESPONSE_HEAD => len,
        Ok(httparse::Status::Complete(_)) => return Err("response head too large"),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_RESPONSE_HEAD => {
            return Err("response head too large")
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("malformed response head"),
    };
    let base = buf.as_ptr() as usize;
    let status = StatusCode::from_u16(parsed.code.unwrap_or(0)).map_err(|_| "bad status")?;
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut spans = Spans::default();
    spans.fill(parsed.headers, base);
    let head = buf.split_to(len).freeze();
    // Its `Connection` options are read here and the header left out: it concerns this
    // connection only, and removing it later would cost a lookup and a removal.
    let (map, seen) = spans.header_map(&head, 0, true)?;
    let connection = connection_tokens(&map, seen);
    let mut keep_alive = match version {
        Version::HTTP_10 => connection.keep_alive,
        _ => !connection.close,
    };
    // The request's rules (chunked alone, or one length), except that a response that
    // declares neither ends with the connection. A coding other than chunked is refused:
    // the client would get the body still coded, but no longer told so.
    let framing = if bodiless(method, status) {
        Framing::Length(0)
    } else {
        match framing(&map, seen, version)? {
            (Framing::Length(0), _) if !seen.content_length => Framing::UntilClose,
            (framing, _) => framing,
        }
    };
    if framing == Framing::UntilClose {
        keep_alive = false;
    }
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = map;
    Ok(Some(ResponseHead {
        response,
        framing,
        keep_alive,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instances_weft_error_is_left_out() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 403 Forbidden\r\nWeft-Error: connect refused\r\nx-app: 1\r\nContent-Length: 0\r\n\r\n",
        );
        let h = parse(&mut buf, &Method::POST).unwrap().unwrap();
        assert!(h.response.headers().get("weft-error").is_none());
        assert_eq!(h.response.headers()["x-app"], "1");
    }

    #[test]
    fn a_response_connection_header_is_read_and_left_out_unless_it_names_headers() {
        let parse = |head: &str| {
            let mut buf = BytesMut::from(head);
            parse(&mut buf, &Method::GET).unwrap().unwrap()
        };
        let h = parse("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(h.keep_alive);
        assert!(!h.response.headers().contains_key(header::CONNECTION));
        let h = parse("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.keep_alive);
        assert!(!h.response.headers().contains_key(header::CONNECTION));
        let h = parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(h.keep_alive);
        // A header named in `Connection` must still be stripped later: the value stays.
        let h = parse(
            "HTTP/1.1 200 OK\r\nConnection: close, x-hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(!h.keep_alive);
        assert_eq!(h.response.headers()[header::CONNECTION], "close, x-hop");
    }

    #[test]
    fn response_heads_frame_their_bodies() {
        let rsp = Response::builder().status(200).body(()).unwrap();
        let mut out = Vec::new();
        let mut ka = true;
        let f = encode(
            &rsp,
            None,
            &Method::GET,
            Version::HTTP_11,
            &mut ka,
            &mut out,
        );
        assert_eq!(f, BodyFraming::Chunked);
        assert!(String::from_utf8_lossy(&out).contains("transfer-encoding: chunked\r\n"));
        out.clear();
        let f = encode(
            &rsp,
            None,
            &Method::GET,
            Version::HTTP_10,
            &mut ka,
            &mut out,
        );
        assert_eq!(f, BodyFraming::Close);
        assert!(!ka);
        out.clear();
        let mut ka = true;
        let f = encode(
            &rsp,
            Some(5),
            &Method::HEAD,
            Version::HTTP_11,
            &mut ka,
            &mut out,
        );
        assert_eq!(f, BodyFraming::None);
        assert_eq!(String::from_utf8_lossy(&out), "HTTP/1.1 200 OK\r\n\r\n");
    }

    #[test]
    fn an_instances_response_is_framed_as_rfc_9112_says() {
        let framing = |method: &Method, head: &str| {
            let mut buf = BytesMut::from(head);
            parse(&mut buf, method).map(|h| h.map(|h| (h.framing, h.keep_alive)))
        };
        let get = &Method::GET;
        let cases: [(&Method, &str, Framing, bool); 7] = [
            (
                get,
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                Framing::Length(5),
                true,
            ),
            (
                get,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Framing::Chunked,
                true,
            ),
            // Both: Transfer-Encoding frames it.
            (
                get,
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                Framing::Chunked,
                true,
            ),
            // No length at all: until the close.
            (get, "HTTP/1.1 200 OK\r\n\r\n", Framing::UntilClose, false),
            // No body whatever the headers say: HEAD, 204, 304.
            (
                &Method::HEAD,
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                Framing::Length(0),
                true,
            ),
            (
                get,
                "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                Framing::Length(0),
                true,
            ),
            (
                get,
                "HTTP/1.0 304 Not Modified\r\n\r\n",
                Framing::Length(0),
                false,
            ),
        ];
        for (method, head, want, keep_alive) in cases {
            assert_eq!(
                framing(method, head),
                Ok(Some((want, keep_alive))),
                "{head:?}"
            );
        }
        assert!(framing(
            get,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
        )
        .is_err());
        assert!(framing(get, "HTTP/1.1 2000 OK\r\n\r\n").is_err());
        // A coding the proxy cannot undo would reach the client undeclared.
        assert!(framing(get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").is_err());
        assert!(framing(
            get,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        )
        .is_err());
        assert_eq!(framing(get, "HTTP/1.1 200 OK\r\nContent-Len"), Ok(None));
        let huge = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_RESPONSE_HEAD));
        assert!(framing(get, &huge).is_err());
    }

    /// Found by fuzzing (fuzz/regressions/h1_response/head-past-the-limit-taken-when-whole):
    /// a head past the limit was refused while it arrived, but taken when one read brought
    /// all of it.
    #[test]
    fn the_head_limit_holds_when_the_head_arrives_at_once() {
        let head = |len: usize| {
            let filler = "a".repeat(len - "HTTP/1.1 200 OK\r\nx: \r\n\r\n".len());
            let mut buf =
                BytesMut::from(format!("HTTP/1.1 200 OK\r\nx: {filler}\r\n\r\n").as_str());
            parse(&mut buf, &Method::GET).map(|h| h.is_some())
        };
        assert_eq!(head(MAX_RESPONSE_HEAD), Ok(true));
        assert_eq!(head(MAX_RESPONSE_HEAD + 1), Err("response head too large"));
    }

    #[test]
    fn a_response_head_for_a_client_replaces_connection_headers() {
        let rsp = Response::builder()
            .status(200)
            .header("connection", "keep-alive")
            .header("transfer-encoding", "chunked")
            .header("x-kept", "1")
            .body(())
            .unwrap();
        let mut out = Vec::new();
        let mut keep_alive = false;
        let f = encode(
            &rsp,
            Some(3),
            &Method::GET,
            Version::HTTP_11,
            &mut keep_alive,
            &mut out,
        );
        assert_eq!(f, BodyFraming::Length(3));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nx-kept: 1\r\ncontent-length: 3\r\nconnection: close\r\n\r\n"
        );
        // An HTTP/1.0 client that asked to keep the connection is told it is kept.
        let mut out = Vec::new();
        let mut keep_alive = true;
        let rsp = Response::builder().status(404).body(()).unwrap();
        encode(
            &rsp,
            Some(0),
            &Method::GET,
            Version::HTTP_10,
            &mut keep_alive,
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.ends_with("connection: keep-alive\r\n\r\n"), "{text}");
    }

    #[test]
    fn a_tunnels_answer_has_no_body_and_no_framing() {
        let rsp = Response::builder()
            .status(200)
            .header("content-length", "0")
            .body(())
            .unwrap();
        let mut out = Vec::new();
        let mut keep_alive = true;
        let f = encode(
            &rsp,
            Some(0),
            &Method::CONNECT,
            Version::HTTP_11,
            &mut keep_alive,
            &mut out,
        );
        assert_eq!(f, BodyFraming::None);
        assert_eq!(String::from_utf8(out).unwrap(), "HTTP/1.1 200 OK\r\n\r\n");
        // A refused tunnel is an ordinary answer.
        let rsp = Response::builder().status(403).body(()).unwrap();
        let mut out = Vec::new();
        let f = encode(
            &rsp,
            Some(4),
            &Method::CONNECT,
            Version::HTTP_11,
            &mut keep_alive,
            &mut out,
        );
        assert_eq!(f, BodyFraming::Length(4));
    }

    #[test]
    fn an_answer_that_says_close_closes_the_connection() {
        let rsp = Response::builder()
            .status(400)
            .header("connection", "close")
            .body(())
            .unwrap();
        let mut out = Vec::new();
        let mut keep_alive = true;
        encode(
            &rsp,
            Some(0),
            &Method::GET,
            Version::HTTP_11,
            &mut keep_alive,
            &mut out,
        );
        assert!(!keep_alive);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("connection: close").count(), 1, "{text}");
    }
}
