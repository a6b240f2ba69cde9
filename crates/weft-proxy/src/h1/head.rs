//! HTTP/1.x message heads: a request head parsed from the connection's buffer (header values
//! stay slices of one shared allocation), and a response head written out.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};

/// Most headers a request head may carry, as hyper allows.
const MAX_HEADERS: usize = 100;

/// How the request's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// A parsed request head and what it means for the connection.
pub struct Head {
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
pub fn parse(buf: &mut BytesMut, max: usize) -> Result<Option<Head>, Refusal> {
    // Uninitialised: zeroing a hundred headers cost more than parsing a typical head.
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
    let (framing, close_after) = framing(&map, seen, version)?;
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
    Ok(Some(Head {
        request,
        framing,
        keep_alive,
        close_after,
        expect_continue,
        upgrade,
    }))
}

/// Where each header's name and value sit in the head, so that once the head is split off
/// the buffer they become slices of it instead of copies. Most heads fit inline.
#[derive(Default)]
struct Spans {
    inline: [(Span, Span); INLINE_SPANS],
    heap: Vec<(Span, Span)>,
    len: usize,
}

type Span = (usize, usize);
const INLINE_SPANS: usize = 24;

impl Spans {
    /// Filled in place: built and returned by value, the inline array was copied whole.
    fn fill(&mut self, headers: &[httparse::Header<'_>], base: usize) {
        let at = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
        self.len = headers.len();
        let pairs = headers.iter().map(|h| (at(h.name.as_bytes()), at(h.value)));
        if headers.len() <= INLINE_SPANS {
            for (slot, pair) in self.inline.iter_mut().zip(pairs) {
                *slot = pair;
            }
        } else {
            self.heap.extend(pairs);
        }
    }

    /// With `absorb_connection`, a `Connection` header naming only `close` or `keep-alive`
    /// is read into [`Seen`] instead of the map (one that names other headers stays, so
    /// they can be stripped).
    fn header_map(
        &self,
        head: &Bytes,
        room: usize,
        absorb_connection: bool,
    ) -> Result<(HeaderMap, Seen), &'static str> {
        let spans = if self.heap.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.heap[..]
        };
        let mut map = HeaderMap::with_capacity(self.len + room);
        let mut seen = Seen::default();
        for &((n, nl), (v, vl)) in spans {
            let raw = &head[n..n + nl];
            let name = match common_name(raw) {
                Some(name) => name,
                None => HeaderName::from_bytes(raw).map_err(|_| "bad header name")?,
            };
            let value = HeaderValue::from_maybe_shared(head.slice(v..v + vl))
                .map_err(|_| "bad header value")?;
            if absorb_connection && name == header::CONNECTION {
                if let (options, false) = ConnectionTokens::scan(value.as_bytes()) {
                    seen.absorbed.add(options);
                    continue;
                }
            }
            seen.note(&name);
            map.append(name, value);
        }
        Ok((map, seen))
    }
}

/// The standard names HTTP/1 peers send most, in the two spellings they use, matched as
/// they come: `HeaderName::from_bytes` first lower-cases any name into a buffer and then
/// looks it up, about 140 instructions a name.
fn common_name(raw: &[u8]) -> Option<HeaderName> {
    Some(match raw {
        b"Host" | b"host" => header::HOST,
        b"User-Agent" | b"user-agent" => header::USER_AGENT,
        b"Accept" | b"accept" => header::ACCEPT,
        b"Accept-Encoding" | b"accept-encoding" => header::ACCEPT_ENCODING,
        b"Content-Length" | b"content-length" => header::CONTENT_LENGTH,
        b"Content-Type" | b"content-type" => header::CONTENT_TYPE,
        b"Connection" | b"connection" => header::CONNECTION,
        b"Date" | b"date" => header::DATE,
        b"Server" | b"server" => header::SERVER,
        b"Last-Modified" | b"last-modified" => header::LAST_MODIFIED,
        b"ETag" | b"etag" => header::ETAG,
        b"Accept-Ranges" | b"accept-ranges" => header::ACCEPT_RANGES,
        b"Cache-Control" | b"cache-control" => header::CACHE_CONTROL,
        b"Transfer-Encoding" | b"transfer-encoding" => header::TRANSFER_ENCODING,
        _ => return None,
    })
}

/// Which of the headers that shape the message a head carries, noted while the map is
/// built: most heads carry few of them, and a lookup that misses still hashes the name.
#[derive(Default, Clone, Copy)]
struct Seen {
    transfer_encoding: bool,
    content_length: bool,
    /// A `Connection` header is in the map.
    connection: bool,
    expect: bool,
    /// Options of `Connection` headers read instead of kept.
    absorbed: ConnectionTokens,
}

impl Seen {
    fn note(&mut self, name: &HeaderName) {
        match name.as_str() {
            "transfer-encoding" => self.transfer_encoding = true,
            "content-length" => self.content_length = true,
            "connection" => self.connection = true,
            "expect" => self.expect = true,
            _ => {}
        }
    }
}

/// The body's framing (RFC 9112 §6.3): Transfer-Encoding wins over Content-Length, and
/// then the connection cannot be trusted for another request.
fn framing(map: &HeaderMap, seen: Seen, version: Version) -> Result<(Framing, bool), Refusal> {
    if let Some(te) = last_transfer_coding(map, seen) {
        if version == Version::HTTP_10 || !te.eq_ignore_ascii_case(b"chunked") {
            return Err(Refusal::Malformed("unsupported transfer-encoding"));
        }
        return Ok((Framing::Chunked, seen.content_length));
    }
    if !seen.content_length {
        return Ok((Framing::Length(0), false));
    }
    let mut length = None;
    for v in map.get_all(header::CONTENT_LENGTH) {
        let n = std::str::from_utf8(v.as_bytes())
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(Refusal::Malformed("bad content-length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(Refusal::Malformed("conflicting content-length"));
        }
        length = Some(n);
    }
    Ok((Framing::Length(length.unwrap_or(0)), false))
}

#[derive(Default, Clone, Copy)]
struct ConnectionTokens {
    close: bool,
    keep_alive: bool,
    upgrade: bool,
}

impl ConnectionTokens {
    /// The options a `Connection` value names, and whether it names anything else too (a
    /// header, or `upgrade`): such a value must stay in the map.
    fn scan(value: &[u8]) -> (Self, bool) {
        let (mut t, mut other) = (Self::default(), false);
        for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if token.eq_ignore_ascii_case(b"close") {
                t.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                t.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                (t.upgrade, other) = (true, true);
            } else if !token.is_empty() {
                other = true;
            }
        }
        (t, other)
    }

    fn add(&mut self, other: Self) {
        self.close |= other.close;
        self.keep_alive |= other.keep_alive;
        self.upgrade |= other.upgrade;
    }
}

/// The last coding `Transfer-Encoding` names, when the head has one.
fn last_transfer_coding(map: &HeaderMap, seen: Seen) -> Option<&[u8]> {
    if !seen.transfer_encoding {
        return None;
    }
    let te = map.get_all(header::TRANSFER_ENCODING).iter().next_back()?;
    Some(
        te.as_bytes()
            .rsplit(|&b| b == b',')
            .next()
            .unwrap_or(b"")
            .trim_ascii(),
    )
}

fn connection_tokens(map: &HeaderMap, seen: Seen) -> ConnectionTokens {
    let mut t = seen.absorbed;
    if !seen.connection {
        return t;
    }
    for v in map.get_all(header::CONNECTION) {
        t.add(ConnectionTokens::scan(v.as_bytes()).0);
    }
    t
}

/// Responses that never carry a body, whatever their headers say (RFC 9112 §6.3).
fn bodiless(request_method: &Method, status: StatusCode) -> bool {
    request_method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// How the response body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body at all (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and no known length).
    Close,
}

/// Writes the response head into `out` and says how its body is framed. Connection-level
/// headers the response carries are replaced by the ones this connection needs.
pub fn encode_response<B>(
    rsp: &Response<B>,
    exact_len: Option<u64>,
    request_method: &Method,
    request_version: Version,
    keep_alive: &mut bool,
    out: &mut Vec<u8>,
) -> BodyFraming {
    let status = rsp.status();
    let headers = rsp.headers();
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
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
        if *name == header::TRANSFER_ENCODING || (*name == header::CONNECTION && !switching) {
            continue;
        }
        // A HEAD or 304 answer keeps the length the full response would have had.
        if *name == header::CONTENT_LENGTH
            && !matches!(framing, BodyFraming::Length(_) | BodyFraming::None)
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
pub fn parse_response(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<ResponseHead>, &'static str> {
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let parsing = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut headers,
    );
    let len = match parsing {
        Ok(httparse::Status::Complete(len)) => len,
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
    // connection only, and removing it later cost a lookup and a removal per response.
    let (map, seen) = spans.header_map(&head, 0, true)?;
    let connection = connection_tokens(&map, seen);
    let mut keep_alive = match version {
        Version::HTTP_10 => connection.keep_alive,
        _ => !connection.close,
    };
    let framing = if bodiless(method, status) {
        Framing::Length(0)
    } else if let Some(te) = last_transfer_coding(&map, seen) {
        if te.eq_ignore_ascii_case(b"chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match framing(&map, seen, version) {
            Ok((Framing::Length(n), _)) if seen.content_length => Framing::Length(n),
            Ok(_) => Framing::UntilClose,
            Err(_) => return Err("bad content-length"),
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

/// Writes a request head for an instance into `out`, with the framing its body needs
/// (`exact`: the body's known length). Framing headers the request carries are replaced.
pub fn encode_request(
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
    out.extend_from_slice(
        parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes(),
    );
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

/// One `name: value` line of a head or trailer section.
pub fn write_header(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn write_length(n: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A bare answer for a request the proxy could not even parse.
pub fn refusal(refusal: Refusal) -> Vec<u8> {
    let status = refusal.status();
    let body = refusal.reason();
    format!(
        "HTTP/1.1 {} {}\r\n{}: {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        weft_core::headers::WEFT_ERROR.as_str(),
        body,
        body.len() + 1,
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

    fn head(raw: &str) -> Result<Option<Head>, Refusal> {
        parse(&mut BytesMut::from(raw), 8192)
    }

    #[test]
    fn a_common_name_is_the_name_the_full_parse_gives() {
        let spellings = [
            "Host",
            "host",
            "User-Agent",
            "user-agent",
            "Accept",
            "accept",
            "Accept-Encoding",
            "accept-encoding",
            "Content-Length",
            "content-length",
            "Content-Type",
            "content-type",
            "Connection",
            "connection",
            "Date",
            "date",
            "Server",
            "server",
            "Last-Modified",
            "last-modified",
            "ETag",
            "etag",
            "Accept-Ranges",
            "accept-ranges",
            "Cache-Control",
            "cache-control",
            "Transfer-Encoding",
            "transfer-encoding",
        ];
        for raw in spellings {
            let fast = common_name(raw.as_bytes()).unwrap_or_else(|| panic!("{raw} missed"));
            assert_eq!(
                fast,
                HeaderName::from_bytes(raw.as_bytes()).unwrap(),
                "{raw}"
            );
        }
        // Other spellings and other names take the full parse, and still parse the same.
        for raw in ["HOST", "Content-length", "X-Host", "Hos", "hostt"] {
            assert_eq!(common_name(raw.as_bytes()), None, "{raw}");
        }
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

    #[test]
    fn a_response_connection_header_is_read_and_left_out_unless_it_names_headers() {
        let parse = |head: &str| {
            let mut buf = BytesMut::from(head);
            parse_response(&mut buf, &Method::GET).unwrap().unwrap()
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
        let f = encode_response(
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
        let f = encode_response(
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
        let f = encode_response(
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
}
