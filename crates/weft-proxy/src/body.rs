//! The response body the proxy returns: either the upstream's body streamed through frame by
//! frame, or a small body the proxy made. When the stream ends — cleanly, with an error, or
//! because the client went away — its [`Completion`] records the response exactly once.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use weft_metrics::{Classification, RouteMetrics};

use crate::balancer::LoadGuard;
use crate::client::h1::ResponseBody;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct ProxyBody {
    kind: Kind,
    completion: Option<Completion>,
}

enum Kind {
    Upstream(ResponseBody),
    Full(Option<Bytes>),
}

impl ProxyBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Full(Some(bytes.into())),
            completion: None,
        }
    }

    pub fn empty() -> Self {
        Self {
            kind: Kind::Full(None),
            completion: None,
        }
    }

    pub fn upstream(body: ResponseBody, completion: Completion) -> Self {
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
            Kind::Upstream(body) => match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => {
                    this.finish(None);
                    Poll::Ready(None)
                }
                Poll::Ready(Some(Ok(frame))) => {
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
                        c.class = Classification::Failure;
                        c.error = "upstream reset";
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
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream(b) => b.size_hint(),
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

/// A body read off an HTTP/1 connection, or off an HTTP/2 stream.
pub enum EitherBody<A, B> {
    H1(A),
    H2(B),
}

/// A request body as the client sends it.
pub type ClientBody = EitherBody<crate::h1::body::RecvBody, crate::client::h2::H2Body>;

impl<A, B> Body for EitherBody<A, B>
where
    A: Body<Data = Bytes, Error = BoxError> + Unpin,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::H1(b) => Pin::new(b).poll_frame(cx),
            Self::H2(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::H1(b) => b.is_end_stream(),
            Self::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::H1(b) => b.size_hint(),
            Self::H2(b) => b.size_hint(),
        }
    }
}

/// A request body on its way upstream: streamed from the client, or buffered so that a
/// retry can send it again.
pub enum RequestBody {
    /// The client's body, streamed; `aborted` turns true if the client fails it midway.
    Streaming {
        body: ClientBody,
        aborted: Arc<AtomicBool>,
    },
    Buffered {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
    },
}

impl RequestBody {
    pub fn streaming(body: ClientBody) -> Self {
        Self::Streaming {
            body,
            aborted: Arc::default(),
        }
    }

    /// Turns true if the client breaks off the body; `None` for buffered bodies.
    pub fn abort_flag(&self) -> Option<Arc<AtomicBool>> {
        match self {
            Self::Streaming { aborted, .. } => Some(Arc::clone(aborted)),
            Self::Buffered { .. } => None,
        }
    }

    pub fn empty() -> Self {
        Self::Buffered {
            data: None,
            trailers: None,
        }
    }

    /// A copy to send again, if this body is buffered.
    pub fn replay(&self) -> Option<Self> {
        match self {
            Self::Streaming { .. } => None,
            Self::Buffered { data, trailers } => Some(Self::Buffered {
                data: data.clone(),
                trailers: trailers.clone(),
            }),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut *self {
            Self::Streaming { body, aborted } => {
                let polled = Pin::new(body).poll_frame(cx);
                if let Poll::Ready(Some(Err(_))) = &polled {
                    aborted.store(true, Ordering::Relaxed);
                }
                polled
            }
            Self::Buffered { data, trailers } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Streaming { body, .. } => body.is_end_stream(),
            Self::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Streaming { body, .. } => body.size_hint(),
            Self::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

/// What to record when a streamed response ends.
pub struct Completion {
    pub route: RouteMetrics,
    pub status: u16,
    pub class: Classification,
    pub error: &'static str,
    pub load: Option<LoadGuard>,
}

impl Completion {
    fn finish(self, trailers: Option<&HeaderMap>) {
        let failed = trailers.is_some_and(grpc_failed);
        let class = if failed {
            Classification::Failure
        } else {
            self.class
        };
        self.route.response(self.status, class, self.error);
    }
}

/// Success is a status below 500 and, for gRPC, `grpc-status` 0 or absent.
pub fn classify(status: http::StatusCode, headers: &HeaderMap) -> Classification {
    if status.is_server_error() || grpc_failed(headers) {
        Classification::Failure
    } else {
        Classification::Success
    }
}

fn grpc_failed(headers: &HeaderMap) -> bool {
    headers
        .get(weft_core::headers::GRPC_STATUS)
        .is_some_and(|v| v.as_bytes() != b"0")
}
