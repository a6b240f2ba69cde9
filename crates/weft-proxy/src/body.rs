//! The response body the proxy returns: either the upstream's body streamed through frame by
//! frame, or a small body the proxy made. When the stream ends — cleanly, with an error, or
//! because the client went away — its [`Completion`] records the response exactly once.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use weft_http::{headers, BoxError, ResponseBody};

use crate::record::Completion;
use crate::tap::TapStream;

/// An upstream's response on its way to the client: its hop-by-hop headers go, and its body
/// streams through, recording `completion` when it ends.
pub(crate) fn forwarded(
    mut rsp: Response<ResponseBody>,
    completion: Completion,
) -> Response<ProxyBody> {
    let switching = rsp.status() == StatusCode::SWITCHING_PROTOCOLS;
    headers::strip_hop_by_hop(rsp.headers_mut(), switching);
    rsp.map(|body| ProxyBody::upstream(body, completion))
}

pub(crate) struct ProxyBody {
    kind: Kind,
    completion: Option<Completion>,
}

enum Kind {
    Upstream(ResponseBody),
    Full(Option<Bytes>),
    /// A tap subscriber's stream (admin): boxed, as it is rare.
    Tap(Box<TapStream>),
}

impl ProxyBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Full(Some(bytes.into())),
            completion: None,
        }
    }

    pub(crate) fn tap(stream: TapStream) -> Self {
        Self {
            kind: Kind::Tap(Box::new(stream)),
            completion: None,
        }
    }

    pub(crate) fn upstream(body: ResponseBody, completion: Completion) -> Self {
        Self {
            kind: Kind::Upstream(body),
            completion: Some(completion),
        }
    }

    fn finish(&mut self, trailers: Option<&HeaderMap>) {
        if let Some(c) = self.completion.take() {
            c.finish(trailers);
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match &mut this.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Tap(s) => s.poll_line(cx).map(|l| l.map(|b| Ok(Frame::data(b)))),
            Kind::Upstream(body) => match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => {
                    this.finish(None);
                    Poll::Ready(None)
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let (Some(data), Some(c)) = (frame.data_ref(), this.completion.as_mut()) {
                        c.sent(data.len());
                    }
                    if let Some(trailers) = frame.trailers_ref() {
                        this.finish(Some(trailers));
                    } else if body.is_end_stream() {
                        // A sized body ends with its last byte; the server may not poll
                        // again to see the end, so the response is recorded here.
                        this.finish(None);
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(e))) => {
                    if let Some(c) = this.completion.as_mut() {
                        c.broken();
                    }
                    this.finish(None);
                    Poll::Ready(Some(Err(e)))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Upstream(b) => b.is_end_stream(),
            Kind::Tap(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream(b) => b.size_hint(),
            Kind::Tap(_) => SizeHint::default(),
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // A client that leaves mid-body still gets its response counted; the upstream
        // connection is not reused since its response was not read to the end.
        self.finish(None);
    }
}
