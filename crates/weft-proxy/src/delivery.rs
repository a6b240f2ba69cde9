//! One attempt's exchange with an instance or a peer proxy, chosen and prepared before it
//! is first polled. An enum of the client futures rather than an async fn around them: each
//! async layer kept its own copy of the request for its whole life, and every layer's
//! future was copied whole when the layer above made it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Response;
use pin_project_lite::pin_project;
use weft_core::ProxyError;

use crate::client::h1::ResponseBody;
use crate::client::h2::H2Body;
use crate::client::SendError;
use crate::resilience::timers::WithDeadline;

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
    /// An attempt bounded by its per-attempt timeout (none, when `attempt` has no deadline).
    /// One struct, built where it is returned: an async block would hold the delivery twice
    /// (captured and awaited), and each wrapper layer copied the delivery (a kilobyte) in.
    pub struct Bounded<'a, H1, H2> {
        #[pin]
        pub attempt: WithDeadline<'a, Delivery<'a, H1, H2>>,
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
        this.attempt.poll(cx).map(|sent| {
            sent.unwrap_or_else(|| {
                Err(ProxyError::AttemptTimeout {
                    endpoint: *this.endpoint,
                    timeout: *this.timeout,
                }
                .into())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::timers::Timers;
    use std::future::{pending, ready, Pending, Ready};

    type Stalled = Delivery<'static, Pending<Sent>, Pending<H2Sent>>;

    fn bounded<'a, H1, H2>(
        timers: &'a Timers,
        inner: Delivery<'a, H1, H2>,
        limit: Option<std::time::Instant>,
    ) -> Bounded<'a, H1, H2>
    where
        H1: Future<Output = Sent>,
        H2: Future<Output = H2Sent>,
    {
        Bounded {
            attempt: timers.bound(limit, inner),
            endpoint: ([127, 0, 0, 1], 1).into(),
            timeout: Duration::from_millis(20),
        }
    }

    #[tokio::test]
    async fn without_a_limit_it_waits_and_with_one_it_gives_up() {
        let answered: Delivery<'static, Ready<Sent>, Pending<H2Sent>> = Delivery::H1 {
            send: ready(Ok(Response::new(ResponseBody::H1(
                crate::client::h1::UpstreamBody::empty(),
            )))),
        };
        let timers = Timers::default();
        assert!(bounded(&timers, answered, None).await.is_ok());
        let stalled: Stalled = Delivery::H1 { send: pending() };
        let started = std::time::Instant::now();
        let at = started + Duration::from_millis(20);
        let Err(err) = bounded(&timers, stalled, Some(at)).await else {
            panic!("a stalled attempt answered");
        };
        assert!(
            matches!(err.error, ProxyError::AttemptTimeout { .. }),
            "{:?}",
            err.error
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
