//! A request body read straight off the client's socket by whoever forwards it (no channel,
//! no task in between), decoding Content-Length or chunked framing. Once it has read its
//! last byte it hands the connection's buffer back, so the next request can be read; a body
//! dropped before its end leaves the connection unusable, and the connection closes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

use super::head::Framing;
use super::io::Socket;
use crate::body::BoxError;

/// Largest chunk-size line or trailer section accepted.
const MAX_LINE: usize = 16 * 1024;
/// Most bytes read from the socket at once for a body.
const READ_SIZE: usize = 16 * 1024;

pub struct RecvBody {
    io: Option<Arc<Socket>>,
    buf: BytesMut,
    state: State,
    /// Takes the buffer back to the connection when the body has been read to its end.
    done: Option<oneshot::Sender<BytesMut>>,
    /// Owed to a client that sent `Expect: 100-continue`, on the first read.
    send_continue: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    Done,
}

impl RecvBody {
    pub fn empty() -> Self {
        Self {
            io: None,
            buf: BytesMut::new(),
            state: State::Done,
            done: None,
            send_continue: false,
        }
    }

    pub(super) fn new(
        io: Arc<Socket>,
        buf: BytesMut,
        framing: Framing,
        send_continue: bool,
        done: oneshot::Sender<BytesMut>,
    ) -> Self {
        Self {
            io: Some(io),
            buf,
            state: match framing {
                Framing::Length(n) => State::Length(n),
                Framing::Chunked => State::ChunkSize,
            },
            done: Some(done),
            send_continue,
        }
    }

    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(done) = self.done.take() {
            let _ = done.send(std::mem::take(&mut self.buf));
        }
        self.io = None;
    }

    fn fail(&mut self, why: &'static str) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = State::Done;
        self.done = None;
        self.io = None;
        Poll::Ready(Some(Err(
            io::Error::new(io::ErrorKind::UnexpectedEof, why).into()
        )))
    }

    /// Reads more from the socket; `Ok(false)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let Some(io) = &self.io else {
            return Poll::Ready(Ok(false));
        };
        if self.send_continue {
            self.send_continue = false;
            const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
            if io.try_write(CONTINUE)? != CONTINUE.len() {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
        }
        loop {
            ready!(io.poll_read_ready(cx))?;
            self.buf.reserve(READ_SIZE);
            match io.try_read_buf(&mut self.buf) {
                Ok(n) => return Poll::Ready(Ok(n > 0)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Takes up to `left` bytes of body data from the buffer.
    fn take(&mut self, left: u64) -> Bytes {
        let n = self
            .buf
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        self.buf.split_to(n).freeze()
    }
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                State::Length(left) | State::ChunkData(left) if !this.buf.is_empty() => {
                    let data = this.take(left);
                    let left = left - data.len() as u64;
                    this.state = match this.state {
                        State::Length(_) => State::Length(left),
                        _ if left == 0 => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                    if this.state == State::Length(0) {
                        // The forwarder may stop polling at the last byte: hand back now.
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::ChunkSize if !this.buf.is_empty() => {
                    match httparse::parse_chunk_size(&this.buf) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            this.buf.advance(used);
                            this.state = if size == 0 {
                                State::Trailers
                            } else {
                                State::ChunkData(size)
                            };
                            continue;
                        }
                        Ok(httparse::Status::Partial) if this.buf.len() < MAX_LINE => {}
                        _ => return this.fail("bad chunk size"),
                    }
                }
                State::ChunkEnd if this.buf.len() >= 2 => {
                    if &this.buf[..2] != b"\r\n" {
                        return this.fail("bad chunk end");
                    }
                    this.buf.advance(2);
                    this.state = State::ChunkSize;
                    continue;
                }
                State::Trailers if this.buf.starts_with(b"\r\n") => {
                    this.buf.advance(2);
                    this.finish();
                    return Poll::Ready(None);
                }
                State::Trailers if !this.buf.is_empty() => match trailers(&this.buf) {
                    Ok(Some((used, map))) => {
                        this.buf.advance(used);
                        this.finish();
                        return Poll::Ready(Some(Ok(Frame::trailers(map))));
                    }
                    Ok(None) if this.buf.len() < MAX_LINE => {}
                    _ => return this.fail("bad trailers"),
                },
                _ => {}
            }
            match ready!(this.poll_fill(cx)) {
                Ok(true) => {}
                Ok(false) => return this.fail("the client's body ended early"),
                Err(_) => return this.fail("the client's connection failed"),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// A trailer section, ended by an empty line; `None` until it is all there.
fn trailers(buf: &[u8]) -> Result<Option<(usize, HeaderMap)>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    match httparse::parse_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete((used, parsed))) => {
            let mut map = HeaderMap::with_capacity(parsed.len());
            for h in parsed {
                let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| ())?;
                let value = HeaderValue::from_bytes(h.value).map_err(|_| ())?;
                map.append(name, value);
            }
            Ok(Some((used, map)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err(()),
    }
}
