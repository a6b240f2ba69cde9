//! HTTP/1 body framing, decoded from a buffer the caller fills: Content-Length, chunked (with
//! trailers), or until the connection closes. Shared by request bodies read from clients and
//! response bodies read from instances.

use std::io;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Frame, SizeHint};

use super::head::Framing;

/// Largest chunk-size line or trailer section accepted, however it arrives: the limit
/// holds for one that came whole in a read as for one still arriving.
const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    UntilClose,
    Done,
}

/// What the buffer held.
pub enum Step {
    Frame(Frame<Bytes>),
    End,
    /// Read more, then decode again.
    More,
}

impl Decoder {
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Length(0) => Self::Done,
            Framing::Length(n) => Self::Length(n),
            Framing::Chunked => Self::ChunkSize,
            Framing::UntilClose => Self::UntilClose,
        }
    }

    pub fn is_done(&self) -> bool {
        *self == Self::Done
    }

    pub fn size_hint(&self) -> SizeHint {
        match *self {
            Self::Length(n) => SizeHint::with_exact(n),
            Self::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }

    /// Takes the next frame out of `buf`. A body ends as soon as its last byte is taken.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, &'static str> {
        loop {
            match *self {
                Self::Done => return Ok(Step::End),
                Self::Length(_) | Self::ChunkData(_) | Self::UntilClose if !buf.is_empty() => {
                    let left = match *self {
                        Self::Length(left) | Self::ChunkData(left) => left,
                        _ => u64::MAX,
                    };
                    let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    *self = match *self {
                        Self::Length(_) if left == 0 => Self::Done,
                        Self::Length(_) => Self::Length(left),
                        Self::ChunkData(_) if left == 0 => Self::ChunkEnd,
                        Self::ChunkData(_) => Self::ChunkData(left),
                        other => other,
                    };
                    return Ok(Step::Frame(Frame::data(data)));
                }
                Self::ChunkSize if !buf.is_empty() => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) if used <= MAX_LINE => {
                        buf.advance(used);
                        *self = if size == 0 {
                            Self::Trailers
                        } else {
                            Self::ChunkData(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_LINE => return Ok(Step::More),
                    _ => return Err("bad chunk size"),
                },
                Self::ChunkEnd if buf.len() >= 2 => {
                    if &buf[..2] != b"\r\n" {
                        return Err("bad chunk end");
                    }
                    buf.advance(2);
                    *self = Self::ChunkSize;
                }
                Self::Trailers if buf.starts_with(b"\r\n") => {
                    buf.advance(2);
                    *self = Self::Done;
                    return Ok(Step::End);
                }
                Self::Trailers if !buf.is_empty() => match trailers(buf)? {
                    Some((used, map)) if used <= MAX_LINE => {
                        buf.advance(used);
                        *self = Self::Done;
                        return Ok(Step::Frame(Frame::trailers(map)));
                    }
                    None if buf.len() < MAX_LINE => return Ok(Step::More),
                    _ => return Err("trailers too large"),
                },
                _ => return Ok(Step::More),
            }
        }
    }

    /// The stream ended: the end of a body delimited by it, else a body cut short.
    pub fn eof(&mut self) -> Result<(), &'static str> {
        match *self {
            Self::UntilClose | Self::Done => {
                *self = Self::Done;
                Ok(())
            }
            _ => Err("the body ended early"),
        }
    }
}

/// The next frame of a body read off a socket: decoded from `buf`, which `fill` tops up
/// (returning the bytes read, 0 at the end of the stream) whenever it runs dry.
/// `Ok(None)` is the end of the body.
pub fn poll_frame(
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
    mut fill: impl FnMut(&mut BytesMut, &mut Context<'_>) -> Poll<io::Result<usize>>,
) -> Poll<Result<Option<Frame<Bytes>>, &'static str>> {
    loop {
        match decoder.decode(buf)? {
            Step::Frame(frame) => return Poll::Ready(Ok(Some(frame))),
            Step::End => return Poll::Ready(Ok(None)),
            Step::More => {}
        }
        match ready!(fill(buf, cx)) {
            Ok(0) => decoder.eof()?,
            Ok(_) => {}
            Err(_) => return Poll::Ready(Err("the connection failed")),
        }
    }
}

/// A trailer section, ended by an empty line; `None` until it is all there.
fn trailers(buf: &[u8]) -> Result<Option<(usize, HeaderMap)>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    match httparse::parse_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete((used, parsed))) => {
            let mut map = HeaderMap::with_capacity(parsed.len());
            for h in parsed {
                let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| "bad trailer")?;
                let value = HeaderValue::from_bytes(h.value).map_err(|_| "bad trailer")?;
                map.append(name, value);
            }
            Ok(Some((used, map)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err("bad trailers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(framing: Framing, wire: &[u8]) -> (Vec<u8>, Option<HeaderMap>, BytesMut) {
        let mut d = Decoder::new(framing);
        let mut buf = BytesMut::from(wire);
        let (mut data, mut trailers) = (Vec::new(), None);
        loop {
            match d.decode(&mut buf).unwrap() {
                Step::Frame(f) => match f.into_data() {
                    Ok(b) => data.extend_from_slice(&b),
                    Err(f) => trailers = f.into_trailers().ok(),
                },
                Step::End => return (data, trailers, buf),
                Step::More => {
                    d.eof().unwrap();
                }
            }
        }
    }

    #[test]
    fn chunked_with_trailers_stops_at_its_end() {
        let (data, trailers, rest) = all(
            Framing::Chunked,
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\ngrpc-status: 0\r\n\r\nNEXT",
        );
        assert_eq!(data, b"hello world");
        assert_eq!(trailers.unwrap()["grpc-status"], "0");
        assert_eq!(&rest[..], b"NEXT");
    }

    #[test]
    fn length_takes_exactly_its_bytes() {
        let (data, _, rest) = all(Framing::Length(3), b"abcdef");
        assert_eq!(data, b"abc");
        assert_eq!(&rest[..], b"def");
    }

    #[test]
    fn a_cut_body_is_an_error_unless_delimited_by_close() {
        let mut d = Decoder::new(Framing::Length(10));
        let mut buf = BytesMut::from(&b"abc"[..]);
        assert!(matches!(d.decode(&mut buf), Ok(Step::Frame(_))));
        assert!(matches!(d.decode(&mut buf), Ok(Step::More)));
        assert!(d.eof().is_err());
        let mut d = Decoder::new(Framing::UntilClose);
        assert!(d.eof().is_ok());
        let mut bad = BytesMut::from(&b"zz\r\n"[..]);
        assert!(Decoder::new(Framing::Chunked).decode(&mut bad).is_err());
    }

    /// Feeds `wire` one byte at a time, as a slow peer would send it.
    fn trickled(
        framing: Framing,
        wire: &[u8],
    ) -> Result<(Vec<u8>, Option<HeaderMap>), &'static str> {
        let mut d = Decoder::new(framing);
        let mut buf = BytesMut::new();
        let (mut data, mut trailers) = (Vec::new(), None);
        let mut rest = wire.iter();
        loop {
            match d.decode(&mut buf)? {
                Step::Frame(f) => match f.into_data() {
                    Ok(b) => data.extend_from_slice(&b),
                    Err(f) => trailers = f.into_trailers().ok(),
                },
                Step::End => return Ok((data, trailers)),
                Step::More => match rest.next() {
                    Some(b) => buf.extend_from_slice(&[*b]),
                    None => {
                        d.eof()?;
                    }
                },
            }
        }
    }

    #[test]
    fn a_chunked_body_decodes_the_same_however_it_arrives() {
        let wire = b"4;name=value\r\nwiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nx-sum: 1\r\nx-more: 2\r\n\r\n";
        let (data, trailers) = trickled(Framing::Chunked, wire).unwrap();
        assert_eq!(data, b"wikipedia in\r\n\r\nchunks.");
        let trailers = trailers.unwrap();
        assert_eq!(trailers["x-sum"], "1");
        assert_eq!(trailers["x-more"], "2");
        let (whole, _, rest) = all(Framing::Chunked, wire);
        assert_eq!(whole, data);
        assert!(rest.is_empty());
        // No trailers: the body ends at the empty line.
        let (data, trailers) = trickled(Framing::Chunked, b"3\r\nabc\r\n0\r\n\r\n").unwrap();
        assert_eq!((data.as_slice(), trailers), (&b"abc"[..], None));
    }

    #[test]
    fn broken_chunked_framing_is_an_error_not_a_guess() {
        let broken: [(&str, &[u8]); 7] = [
            ("a size that is not hex", b"zz\r\n"),
            ("a size past u64", b"fffffffffffffffffff\r\n"),
            ("data longer than its size", b"3\r\nabcd\r\n0\r\n\r\n"),
            ("a size line that never ends", &[b'1'; 17 * 1024]),
            ("a malformed trailer", b"0\r\nno colon\r\n\r\n"),
            ("a body cut short", b"5\r\nab"),
            ("a size without data", b"5\r\n"),
        ];
        for (what, wire) in broken {
            assert!(trickled(Framing::Chunked, wire).is_err(), "{what}");
        }
        let huge_trailers = format!("0\r\nx: {}\r\n", "a".repeat(20 * 1024));
        assert!(trickled(Framing::Chunked, huge_trailers.as_bytes()).is_err());
    }

    /// Found by fuzzing (fuzz/regressions/h1_chunked/*-past-the-limit-taken-when-whole): a
    /// size line or trailer section past the limit was refused while it trickled in (as
    /// `broken_chunked_framing_is_an_error_not_a_guess` checks), but taken when one read
    /// brought all of it.
    #[test]
    fn the_line_limits_hold_when_the_bytes_arrive_at_once() {
        let whole = |wire: &str| {
            let mut buf = BytesMut::from(wire.as_bytes());
            let mut d = Decoder::new(Framing::Chunked);
            loop {
                match d.decode(&mut buf) {
                    Ok(Step::Frame(_)) => {}
                    Ok(_) => return Ok(()),
                    Err(why) => return Err(why),
                }
            }
        };
        let size_line = format!("1;{}\r\nx\r\n0\r\n\r\n", "a".repeat(MAX_LINE));
        assert_eq!(whole(&size_line), Err("bad chunk size"));
        let trailers = format!("0\r\nx: {}\r\n\r\n", "a".repeat(MAX_LINE));
        assert_eq!(whole(&trailers), Err("trailers too large"));
        // A trailer section of the limit itself is taken.
        let at_limit = format!("0\r\nx: {}\r\n\r\n", "a".repeat(MAX_LINE - 7));
        assert_eq!(whole(&at_limit), Ok(()));
    }

    #[test]
    fn a_sized_body_ends_at_its_length_and_reports_what_is_left() {
        let mut d = Decoder::new(Framing::Length(5));
        assert_eq!(d.size_hint().exact(), Some(5));
        let mut buf = BytesMut::from(&b"ab"[..]);
        assert!(matches!(d.decode(&mut buf), Ok(Step::Frame(_))));
        assert_eq!(d.size_hint().exact(), Some(3));
        assert!(Decoder::new(Framing::Length(0)).is_done());
        assert_eq!(Decoder::new(Framing::Chunked).size_hint().exact(), None);
        // Until close: everything up to the end of the stream is the body.
        let (data, trailers) = trickled(Framing::UntilClose, b"all of it").unwrap();
        assert_eq!((data.as_slice(), trailers), (&b"all of it"[..], None));
    }
}
