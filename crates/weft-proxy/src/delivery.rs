//! One attempt's exchange with an instance or a peer proxy, chosen and prepared before it
//! is first polled. An enum of the client futures rather than an async fn around them: each
//! async layer kept its own copy of the request for its whole life, and every layer's
//! future was copied whole when the layer above made it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::Response;
use pin_project_lite::pin_project;
use weft_core::ProxyError;

use crate::client::h1::ResponseBody;
use crate::client::h2::H2Body;
use crate::client::SendError;
use crate::resilience::timeout::MaybeTimeout;

/// One attempt's outcome: a response, or an error.
pub type Sent = Result<Response<ResponseBody>, SendError>;
/// The HTTP/2 client's outcome, before its body is made a [`ResponseBody`].
pub type H2Sent = Result<Response<H2Body>, SendError>;

pin_project! {
    #[project = Proj]
    pub enum Delivery<'a, H1, H2> {
        /// The pooled HTTP/1.1 client.
        H1 { #[pin] send: H1 },
        /// The shared HTTP/2 connection (an instance's own, or the hop to a peer proxy).
        H2 { #[pin] send: H2 },
        /// An upgrade: rare, and its future is large.
        Boxed { send: Pin<Box<dyn Future<Output = Sent> + Send + 'a>> },
        /// Refused before anything was sent.
        Failed { error: Option<ProxyError> },
    }
}

impl<H1, H2> Future for Delivery<'_, H1, H2>
where
    H1: Future<Output = Sent>,
    H2: Future<Output = H2Sent>,
{
    type Output = Sent;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Sent> {
        match self.project() {
            Proj::H1 { send } => send.poll(cx),
            Proj::H2 { send } => send
                .poll(cx)
                .map(|sent| sent.map(|rsp| rsp.map(ResponseBody::H2))),
            Proj::Boxed { send } => send.as_mut().poll(cx),
            Proj::Failed { error } => match error.take() {
                Some(e) => Poll::Ready(Err(e.into())),
                None => Poll::Pending,
            },
        }
    }
}

pin_project! {
    /// An attempt bounded by its per-attempt timeout. A struct, not an async block: the
    /// block would hold the delivery twice, once as captured and once as awaited.
    pub struct Bounded<'a, H1, H2> {
        #[pin]
        pub inner: MaybeTimeout<Delivery<'a, H1, H2>>,
        pub endpoint: SocketAddr,
        pub timeout: Duration,
    }
}

impl<H1, H2> Future for Bounded<'_, H1, H2>
where
    H1: Future<Output = Sent>,
    H2: Future<Output = H2Sent>,
{
    type Output = Sent;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Sent> {
        let this = self.project();
        Poll::Ready(match ready!(this.inner.poll(cx)) {
            Ok(sent) => sent,
            Err(()) => Err(ProxyError::AttemptTimeout {
                endpoint: *this.endpoint,
                timeout: *this.timeout,
            }
            .into()),
        })
    }
}
