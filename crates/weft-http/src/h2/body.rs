//! HTTP/2 bodies under flow control: one read off a stream ([`H2Body`], giving credit back
//! as it goes) and any body sent onto one ([`send_body`]).

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use h2::{Reason, SendStream};
use http_body::{Body, Frame, SizeHint};

use crate::error::BoxError;
use crate::socket::Slot;

/// The largest last chunk of a body sent without first claiming window for it: h2 holds
/// what the window does not yet allow, so this bounds what a stream can hold that way.
const UNCLAIMED_LAST_CHUNK: usize = 16 * 1024;

/// Sends `body` on `tx` as flow control allows, until it ends, the peer resets the stream,
/// or the body fails (the stream is then reset with `failed`). Both directions use it: a
/// request body to an upstream, a response body to an h2c client. `held` keeps a chunk
/// taken from the body while it waits for send capacity.
pub fn send_body<B>(
    body: &mut B,
    tx: &mut SendStream<Bytes>,
    held: &mut Option<(Bytes, bool)>,
    failed: Reason,
    cx: &mut Context<'_>,
) -> Poll<()>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    loop {
        if tx.poll_reset(cx).is_ready() {
            return Poll::Ready(());
        }
        if held.is_some() {
            // Wait for some capacity, then hand h2 the whole chunk: it sends what the window
            // allows and asks for the rest.
            while tx.capacity() == 0 {
                match ready!(tx.poll_capacity(cx)) {
                    Some(Ok(0)) => {}
                    Some(Ok(_)) => break,
                    Some(Err(_)) | None => return Poll::Ready(()),
                }
            }
            if let Some((data, end)) = held.take() {
                if tx.send_data(data, end).is_err() || end {
                    return Poll::Ready(());
                }
            }
            continue;
        }
        match ready!(Pin::new(&mut *body).poll_frame(cx)) {
            None => {
                let _ = tx.send_data(Bytes::new(), true);
                return Poll::Ready(());
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "body failed midway");
                tx.send_reset(failed);
                return Poll::Ready(());
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let end = body.is_end_stream();
                    // A small last chunk (most answers are one; an empty one too) goes
                    // without claiming capacity first: h2 holds it until the window allows,
                    // and what it holds is bounded by this size per stream; a claim and a
                    // wait would each take the streams' lock again.
                    if end && data.len() <= UNCLAIMED_LAST_CHUNK {
                        let _ = tx.send_data(data, true);
                        return Poll::Ready(());
                    }
                    if data.is_empty() {
                        continue;
                    }
                    // A small claim, raised by h2 to the chunk's length once it is sent:
                    // claiming it all now would pin window space while waiting.
                    tx.reserve_capacity(1);
                    *held = Some((data, end));
                }
                Err(frame) => {
                    // No more data: any capacity asked for goes back.
                    tx.reserve_capacity(0);
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = tx.send_trailers(trailers);
                    }
                    return Poll::Ready(());
                }
            },
        }
    }
}

/// A body read off an HTTP/2 stream (a response from upstream, or a request to the h2c
/// listener), giving flow-control credit back as it goes.
pub struct H2Body {
    recv: h2::RecvStream,
    /// Bytes still to come, when the sender declared a length: an HTTP/1.1 hop then frames
    /// the body with Content-Length, as the sender did, rather than chunked.
    left: Option<u64>,
    data_done: bool,
    done: bool,
    /// A response's place in its client connection's count of open streams.
    _counted: Option<Slot>,
}

impl H2Body {
    pub fn new(recv: h2::RecvStream, length: Option<u64>) -> Self {
        Self {
            recv,
            left: length,
            data_done: false,
            done: false,
            _counted: None,
        }
    }

    /// Holds `counted` until the body is dropped.
    pub(crate) fn counted(mut self, counted: Slot) -> Self {
        self._counted = Some(counted);
        self
    }
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if !this.data_done {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    this.left = this.left.map(|n| n.saturating_sub(data.len() as u64));
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                None => this.data_done = true,
            }
        }
        this.done = true;
        match ready!(this.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e.into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.left {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
