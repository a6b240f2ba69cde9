//! What HTTP/1 requests and responses share: headers read in place (each name and value a
//! slice of the one buffer the head was read into), the framing rules of RFC 9112 §6.3, and
//! header lines written out.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use weft_core::headers::WEFT_ERROR;

/// Most headers a request head may carry, as hyper allows.
pub(crate) const MAX_HEADERS: usize = 100;

/// How a received message's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// Where each header's name and value sit in the head, so that once the head is split off
/// the buffer they become slices of it instead of copies. Most heads fit inline.
#[derive(Default)]
pub(super) struct Spans {
    inline: [(Span, Span); INLINE_SPANS],
    heap: Vec<(Span, Span)>,
    len: usize,
}

type Span = (usize, usize);
const INLINE_SPANS: usize = 24;

impl Spans {
    /// Filled in place, so the inline array is not copied on its way out.
    pub(super) fn fill(&mut self, headers: &[httparse::Header<'_>], base: usize) {
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

    /// `from_instance` (a response head): a `Connection` header naming only `close` or
    /// `keep-alive` is read into [`Seen`] instead of the map (one that names other headers
    /// stays, so they can be stripped), and a `weft-error` is left out.
    pub(super) fn header_map(
        &self,
        head: &Bytes,
        room: usize,
        from_instance: bool,
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
                // Only weft speaks `weft-error`: an instance's would pass for a proxy's
                // verdict (a "never delivered" gets a request sent again). Left out here,
                // where every name is looked at anyway, rather than looked up afterwards.
                None if from_instance
                    && raw.eq_ignore_ascii_case(WEFT_ERROR.as_str().as_bytes()) =>
                {
                    continue
                }
                None => HeaderName::from_bytes(raw).map_err(|_| "bad header name")?,
            };
            let value = HeaderValue::from_maybe_shared(head.slice(v..v + vl))
                .map_err(|_| "bad header value")?;
            if from_instance && name == header::CONNECTION {
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
/// they come: `HeaderName::from_bytes` lower-cases any name into a buffer before it looks
/// it up, and these need neither step.
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
pub(super) struct Seen {
    pub(super) transfer_encoding: bool,
    pub(super) content_length: bool,
    /// A `Connection` header is in the map.
    pub(super) connection: bool,
    pub(super) expect: bool,
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
pub(super) fn framing(
    map: &HeaderMap,
    seen: Seen,
    version: Version,
) -> Result<(Framing, bool), &'static str> {
    if seen.transfer_encoding {
        if version == Version::HTTP_10 || !only_chunked(map) {
            return Err("unsupported transfer-encoding");
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
            .ok_or("bad content-length")?;
        if length.is_some_and(|l| l != n) {
            return Err("conflicting content-length");
        }
        length = Some(n);
    }
    Ok((Framing::Length(length.unwrap_or(0)), false))
}

/// Whether the transfer codings are `chunked` alone, the one coding the proxy decodes: any
/// other would reach the instance still applied but no longer declared.
fn only_chunked(map: &HeaderMap) -> bool {
    let mut codings = map
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    matches!(
        (codings.next(), codings.next()),
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked")
    )
}

#[derive(Default, Clone, Copy)]
pub(super) struct ConnectionTokens {
    pub(super) close: bool,
    pub(super) keep_alive: bool,
    pub(super) upgrade: bool,
}

impl ConnectionTokens {
    /// The options a `Connection` value names, and whether it names anything else too (a
    /// header, or `upgrade`): such a value must stay in the map.
    pub(super) fn scan(value: &[u8]) -> (Self, bool) {
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

    pub(super) fn add(&mut self, other: Self) {
        self.close |= other.close;
        self.keep_alive |= other.keep_alive;
        self.upgrade |= other.upgrade;
    }
}

pub(super) fn connection_tokens(map: &HeaderMap, seen: Seen) -> ConnectionTokens {
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
pub(super) fn bodiless(request_method: &Method, status: StatusCode) -> bool {
    request_method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || opens_tunnel(request_method, status)
}

/// A `2xx` answer to `CONNECT`: the connection is a tunnel from its last byte on (RFC 9110
/// §9.3.6), with no body and no framing headers.
pub fn opens_tunnel(request_method: &Method, status: StatusCode) -> bool {
    request_method == Method::CONNECT && status.is_success()
}

/// How a body being sent goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body at all (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and no known length).
    Close,
}

/// One `name: value` line of a head or trailer section.
pub fn write_header(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub(super) fn write_length(n: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
