//! A request body read straight off the client's socket by whoever forwards it (no channel,
//! no task in between), decoding Content-Length or chunked framing. Once it has read its
//! last byte it hands the connection's buffer back, so the next request can be read; a body
//! dropped before its end leaves the connection unusable, and the connection closes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::time::Sleep;

use crate::body::EitherBody;
use crate::error::BoxError;
use crate::h1::decode::{self, Decoder};
use crate::h1::head::Framing;
use crate::h2::body::H2Body;
use crate::socket::{ReadSide, WriteSide};

/// A request body as the client sends it: over HTTP/1, or on an HTTP/2 stream.
pub type ClientBody = EitherBody<RecvBody, H2Body>;

/// Most bytes read from the socket at once for a body.
const READ_SIZE: usize = 16 * 1024;

/// The connection's read side and buffer, lent to a body and given back at its end.
pub type Lent = (ReadSide, BytesMut);

pub struct RecvBody {
    rd: Option<ReadSide>,
    buf: BytesMut,
    decoder: Decoder,
    /// Takes the read side back to the connection when the body has been read to its end.
    done: Option<oneshot::Sender<Lent>>,
    /// Set while a `100 Continue` is owed to a client that asked for one.
    send_continue: Option<Arc<WriteSide>>,
    stall: Stall,
}

/// How long a client may send nothing of a body it has begun. The timer is made only when a
/// read must wait, and moved only when it fires: a read that made progress meanwhile just
/// says so, so the bound is between one and two limits.
#[derive(Default)]
struct Stall {
    limit: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    progressed: bool,
}

impl Stall {
    /// After a read that must wait: whether the client has sent nothing for the limit.
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(limit) = self.limit else {
            return false;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        while timer.as_mut().poll(cx).is_ready() {
            if !std::mem::take(&mut self.progressed) {
                return true;
            }
            timer.as_mut().reset(tokio::time::Instant::now() + limit);
        }
        false
    }
}

impl RecvBody {
    pub fn empty() -> Self {
        Self {
            rd: None,
            buf: BytesMut::new(),
            decoder: Decoder::Done,
            done: None,
            send_continue: None,
            stall: Stall::default(),
        }
    }

    pub(super) fn new(
        (rd, buf): Lent,
        framing: Framing,
        send_continue: Option<Arc<WriteSide>>,
        done: oneshot::Sender<Lent>,
        stall_limit: Duration,
    ) -> Self {
        Self {
            rd: Some(rd),
            buf,
            decoder: Decoder::new(framing),
            done: Some(done),
            send_continue,
            stall: Stall {
                limit: Some(stall_limit),
                ..Stall::default()
            },
        }
    }

    fn give_back(&mut self) {
        if let (Some(done), Some(rd)) = (self.done.take(), self.rd.take()) {
            let _ = done.send((rd, std::mem::take(&mut self.buf)));
        }
    }

    fn fail(&mut self, why: &'static str) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.decoder = Decoder::Done;
        self.done = None;
        self.rd = None;
        Poll::Ready(Some(Err(
            io::Error::new(io::ErrorKind::UnexpectedEof, why).into()
        )))
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
        let (rd, owed, stall) = (&mut this.rd, &mut this.send_continue, &mut this.stall);
        let fill = |buf: &mut BytesMut, cx: &mut Context<'_>| {
            let Some(rd) = rd.as_mut() else {
                return Poll::Ready(Ok(0));
            };
            if let Some(wr) = owed.take() {
                const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
                if wr.try_write(CONTINUE)? != CONTINUE.len() {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
            }
            match rd.poll_read_buf(cx, buf, READ_SIZE) {
                Poll::Pending if stall.stalled(cx) => {
                    Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
                }
                Poll::Ready(Ok(n)) if n > 0 => {
                    stall.progressed = true;
                    Poll::Ready(Ok(n))
                }
                other => other,
            }
        };
        match ready!(decode::poll_frame(
            &mut this.decoder,
            &mut this.buf,
            cx,
            fill
        )) {
            Ok(frame) => {
                if this.decoder.is_done() {
                    // The forwarder may stop polling at the last byte: hand back now.
                    this.give_back();
                }
                Poll::Ready(frame.map(Ok))
            }
            Err(why) => this.fail(why),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.decoder.size_hint()
    }
}
