//! HTTP/1 off a connection: request heads (pipelined, with their bodies) as the listener
//! reads them, response heads and bodies as the upstream client reads them, and chunked
//! framing alone. The property of all three: a peer that sends its bytes one at a time gets
//! the same messages, bodies, trailers and refusals as one that sends them all at once, so
//! what the proxy makes of a message never depends on how the network cut it up.

use bytes::BytesMut;
use http::{HeaderMap, Method, StatusCode, Version};
use weft_core::NameRules;
use weft_http::fuzzing::{
    encode_request, parse_request, parse_response, BodyFraming, Decoder, Framing, Step,
};
use weft_http::headers::{authority, check_framing, path_and_query};

/// The listener's default limit on a request head.
const MAX_REQUEST_HEAD: usize = 8192;
/// Messages read off one input at most: enough for pipelining, bounded for speed.
const MAX_MESSAGES: usize = 16;
/// The most pieces an input is trickled in: byte by byte up to this length.
const TRICKLES: usize = 256;

/// Request heads and bodies, pipelined, as the listener reads them off a client.
pub fn h1_request(data: &[u8]) {
    let whole = requests(&mut Feed::whole(data));
    let trickled = requests(&mut Feed::trickled(data));
    assert_same(whole, trickled);
}

/// A response (after any 1xx), as the client reads it off an instance. The first byte picks
/// the request's method, which shapes the body: `H` HEAD, `C` CONNECT, anything else GET.
pub fn h1_response(data: &[u8]) {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let method = match first {
        b'H' => Method::HEAD,
        b'C' => Method::CONNECT,
        _ => Method::GET,
    };
    let whole = response(&mut Feed::whole(data), &method);
    let trickled = response(&mut Feed::trickled(data), &method);
    assert_same(whole, trickled);
}

/// A chunked body alone: data, trailers and where it ends, or the error.
pub fn h1_chunked(data: &[u8]) {
    let read = |mut feed: Feed| {
        let mut events = Vec::new();
        body(&mut feed, Framing::Chunked, &mut events);
        events
    };
    assert_same(read(Feed::whole(data)), read(Feed::trickled(data)));
}

/// The same messages read whole and trickled, up to why the last was refused when one of
/// the two refused it as too large: bytes past a limit are not read, so a message both
/// too large and malformed past the limit is refused for whichever shows first.
fn assert_same(mut whole: Vec<Event>, mut trickled: Vec<Event>) {
    let too_large = |e: Option<&Event>| match e {
        Some(Event::Refused(why)) => why.contains("too large"),
        Some(Event::BodyError(why)) => why.contains("too large"),
        _ => false,
    };
    let refused = |e: Option<&Event>| matches!(e, Some(Event::Refused(_) | Event::BodyError(_)));
    if refused(whole.last())
        && refused(trickled.last())
        && (too_large(whole.last()) || too_large(trickled.last()))
    {
        whole.pop();
        trickled.pop();
    }
    assert_eq!(whole, trickled, "the same bytes read whole and trickled");
}

/// The bytes a parser has been given so far: all of the input from the start, or one more
/// piece (a byte, for an input of up to `TRICKLES`) each time it asks for more.
struct Feed<'a> {
    data: &'a [u8],
    given: usize,
    step: usize,
    buf: BytesMut,
}

impl<'a> Feed<'a> {
    fn whole(data: &'a [u8]) -> Self {
        Self {
            data,
            given: data.len(),
            step: usize::MAX,
            buf: BytesMut::from(data),
        }
    }

    /// One byte at a time; a long input in at most `TRICKLES` pieces, since each piece
    /// parses the buffer again.
    fn trickled(data: &'a [u8]) -> Self {
        Self {
            data,
            given: 0,
            step: (data.len() / TRICKLES).max(1),
            buf: BytesMut::new(),
        }
    }

    /// Gives the parser more bytes; false at the end of the input (the peer closed).
    fn more(&mut self) -> bool {
        if self.given == self.data.len() {
            return false;
        }
        let end = self.given.saturating_add(self.step).min(self.data.len());
        self.buf.extend_from_slice(&self.data[self.given..end]);
        self.given = end;
        true
    }
}

/// What a reader made of a connection's bytes, in order.
#[derive(Debug, PartialEq)]
enum Event {
    Request {
        method: Method,
        uri: String,
        version: Version,
        headers: Vec<(String, Shown)>,
        framing: Framing,
        keep_alive: bool,
        close_after: bool,
        expect_continue: bool,
        upgrade: bool,
    },
    Refused(String),
    Response {
        status: StatusCode,
        version: Version,
        headers: Vec<(String, Shown)>,
        framing: Framing,
        keep_alive: bool,
    },
    /// A whole body: its data and trailers.
    Body {
        data: Shown,
        trailers: Option<Vec<(String, Shown)>>,
    },
    BodyError(&'static str),
    /// The input ended inside a head.
    Incomplete,
}

/// Bytes compared whole, shown short: a failing input's message stays readable.
#[derive(PartialEq)]
struct Shown(Vec<u8>);

impl std::fmt::Debug for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = String::from_utf8_lossy(&self.0);
        match text.char_indices().nth(64) {
            Some((cut, _)) => write!(f, "{:?}… ({} bytes)", &text[..cut], self.0.len()),
            None => write!(f, "{text:?}"),
        }
    }
}

fn pairs(headers: &HeaderMap) -> Vec<(String, Shown)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), Shown(v.as_bytes().to_vec())))
        .collect()
}

fn requests(feed: &mut Feed<'_>) -> Vec<Event> {
    let mut events = Vec::new();
    for _ in 0..MAX_MESSAGES {
        let head = loop {
            match parse_request(&mut feed.buf, MAX_REQUEST_HEAD) {
                Ok(Some(head)) => break head,
                Ok(None) if feed.more() => {}
                Ok(None) => {
                    events.push(Event::Incomplete);
                    return events;
                }
                Err(refusal) => {
                    events.push(Event::Refused(refusal.reason().to_string()));
                    return events;
                }
            }
        };
        let req = &head.request;
        // What the proxy does next with a head, which must not panic whatever it holds.
        let _ = check_framing(req);
        if let Some(authority) = authority(req) {
            let _ = NameRules::default().service_name(authority);
        }
        let tunnel = req.method() == Method::CONNECT || head.upgrade;
        if !tunnel {
            sent_on_reads_the_same(&head.request, head.framing);
        }
        events.push(Event::Request {
            method: req.method().clone(),
            uri: req.uri().to_string(),
            version: req.version(),
            headers: pairs(req.headers()),
            framing: head.framing,
            keep_alive: head.keep_alive,
            close_after: head.close_after,
            expect_continue: head.expect_continue,
            upgrade: head.upgrade,
        });
        // After a tunnel's head the bytes are the tunnel's; after a refused framing or a
        // close, nothing more is read.
        if !body(feed, head.framing, &mut events) || tunnel {
            return events;
        }
        if !head.keep_alive || head.close_after {
            return events;
        }
    }
    events
}

/// The head the proxy writes for an instance, read back, is the request it read: the same
/// method, target and headers, and the framing it was written with. A head that read one
/// way here and another at the instance would be request smuggling across the proxy.
fn sent_on_reads_the_same(req: &http::Request<()>, framing: Framing) {
    // Room for the framing and `Connection` headers the writer adds.
    if req.headers().len() > 95 {
        return;
    }
    let mut parts = http::Request::new(());
    *parts.method_mut() = req.method().clone();
    *parts.uri_mut() = req.uri().clone();
    *parts.version_mut() = req.version();
    *parts.headers_mut() = req.headers().clone();
    let (parts, ()) = parts.into_parts();
    let (empty, exact) = match framing {
        Framing::Length(n) => (n == 0, Some(n)),
        Framing::Chunked | Framing::UntilClose => (false, None),
    };
    let mut out = Vec::new();
    let sent = encode_request(&parts, empty, exact, &mut out);
    let mut wire = BytesMut::from(&out[..]);
    let back = match parse_request(&mut wire, usize::MAX) {
        Ok(Some(back)) => back,
        other => panic!(
            "the head written for an instance does not parse ({:?}): {:?}",
            other.err(),
            String::from_utf8_lossy(&out)
        ),
    };
    assert!(wire.is_empty(), "one head written, one read");
    let expected = match sent {
        BodyFraming::None => Framing::Length(0),
        BodyFraming::Length(n) => Framing::Length(n),
        BodyFraming::Chunked => Framing::Chunked,
        BodyFraming::Close => unreachable!("requests are never framed by close"),
    };
    assert_eq!(back.framing, expected);
    assert!(!back.close_after, "a written head is never ambiguous");
    let back = back.request;
    assert_eq!(back.method(), parts.method);
    assert_eq!(path_and_query(back.uri()), path_and_query(&parts.uri));
    // What the writer replaces: framing, and for HTTP/1.0 the connection's options.
    let v10 = back.version() == Version::HTTP_10;
    let kept = |headers: &HeaderMap| {
        pairs(headers)
            .into_iter()
            .filter(|(n, _)| {
                n != "content-length" && n != "transfer-encoding" && !(v10 && n == "connection")
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(kept(back.headers()), kept(&parts.headers));
}

/// Reads a body in `framing`: true when it ended where its framing says, so the next message
/// may follow.
fn body(feed: &mut Feed<'_>, framing: Framing, events: &mut Vec<Event>) -> bool {
    let mut decoder = Decoder::new(framing);
    let (mut data, mut trailers) = (Vec::new(), None);
    loop {
        match decoder.decode(&mut feed.buf) {
            Ok(Step::Frame(frame)) => match frame.into_data() {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(frame) => {
                    assert!(trailers.is_none(), "one trailer section");
                    trailers = frame.into_trailers().ok().map(|t| pairs(&t));
                }
            },
            Ok(Step::End) => {
                assert!(decoder.is_done());
                events.push(Event::Body {
                    data: Shown(data),
                    trailers,
                });
                return true;
            }
            Ok(Step::More) if feed.more() => {}
            Ok(Step::More) => {
                if let Err(why) = decoder.eof() {
                    events.push(Event::BodyError(why));
                    return false;
                }
            }
            Err(why) => {
                events.push(Event::BodyError(why));
                return false;
            }
        }
    }
}

fn response(feed: &mut Feed<'_>, method: &Method) -> Vec<Event> {
    let mut events = Vec::new();
    for _ in 0..MAX_MESSAGES {
        let head = loop {
            match parse_response(&mut feed.buf, method) {
                Ok(Some(head)) => break head,
                Ok(None) if feed.more() => {}
                Ok(None) => {
                    events.push(Event::Incomplete);
                    return events;
                }
                Err(why) => {
                    events.push(Event::Refused(why.to_string()));
                    return events;
                }
            }
        };
        let rsp = &head.response;
        let status = rsp.status();
        let bodiless = method == Method::HEAD
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || (method == Method::CONNECT && status.is_success());
        if bodiless {
            assert_eq!(head.framing, Framing::Length(0), "{method} {status}");
        }
        if head.framing == Framing::UntilClose {
            assert!(
                !head.keep_alive,
                "a body ended by the close ends the connection"
            );
        }
        assert!(
            !rsp.headers().contains_key("weft-error"),
            "an instance's weft-error is never believed"
        );
        events.push(Event::Response {
            status,
            version: rsp.version(),
            headers: pairs(rsp.headers()),
            framing: head.framing,
            keep_alive: head.keep_alive,
        });
        // The client skips interim answers and reads the one after.
        if status.is_informational() {
            continue;
        }
        body(feed, head.framing, &mut events);
        return events;
    }
    events
}
