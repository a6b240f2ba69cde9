//! A body read off an HTTP/1 connection or an HTTP/2 stream, whichever the peer spoke: the
//! shape of both a client's request ([`crate::ClientBody`]) and an upstream's response
//! ([`crate::ResponseBody`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::error::BoxError;

/// A body read off an HTTP/1 connection, or off an HTTP/2 stream.
pub enum EitherBody<A, B> {
    H1(A),
    H2(B),
}

impl<A, B> Body for EitherBody<A, B>
where
    A: Body<Data = Bytes, Error = BoxError> + Unpin,
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::H1(b) => Pin::new(b).poll_frame(cx),
            Self::H2(b) => Pin::new(b).poll_frame(cx),
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
