//! One h2c connection (HTTP/2 with prior knowledge), on the `h2` crate directly: each
//! stream's request goes to the handler in a task of its own, and its [`Answer`] sends the
//! response back under flow control.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, SendStream};
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::sync::watch;

use super::recv::ClientBody;
use crate::error::BoxError;
use crate::h2::body::{send_body, H2Body};
use crate::h2::{keep_alive, CONNECTION_WINDOW, STREAM_WINDOW};
use crate::socket::Rewind;

/// Streams one connection may have open at once (hyper's default, kept).
const MAX_STREAMS: u32 = 200;

/// Serves one h2c connection until the client closes it, it breaks, its PINGs go
/// unanswered, or the proxy drains (GOAWAY, then in-flight streams finish).
pub async fn serve<H, F, B>(
    io: Rewind,
    peer: SocketAddr,
    max_header_bytes: usize,
    mut shutdown: watch::Receiver<bool>,
    handler: H,
) where
    H: Fn(SocketAddr, Request<ClientBody>) -> F,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
{
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_STREAMS);
    let mut conn = match builder.handshake::<_, Bytes>(io).await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "h2 handshake failed");
            return;
        }
    };
    let mut unanswered = std::pin::pin!(keep_alive(conn.ping_pong()));
    let mut drain = std::pin::pin!(shutdown.wait_for(|stop| *stop));
    let (mut draining, mut gone) = (false, false);
    loop {
        // Biased: streams first (the others are rare), and no random draw per poll.
        tokio::select! {
            biased;
            accepted = conn.accept() => match accepted {
                Some(Ok((req, reply))) => {
                    let (parts, recv) = req.into_parts();
                    // A declared length travels on as the body's exact size (a GET's empty
                    // stream needs no lookup).
                    let length = if recv.is_end_stream() {
                        Some(0)
                    } else {
                        declared_length(&parts.headers)
                    };
                    let body = ClientBody::H2(H2Body::new(recv, length));
                    // Boxed: the handler's future is a kilobyte, and the task's future is
                    // moved whole on its way into the runtime.
                    let work = Box::pin(handler(peer, Request::from_parts(parts, body)));
                    tokio::spawn(Answer::<_, B>::new(work, reply));
                }
                Some(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "h2 connection ended with an error");
                    return;
                }
                None => return,
            },
            _ = &mut drain, if !draining => {
                draining = true;
                conn.graceful_shutdown();
            }
            () = &mut unanswered, if !gone => {
                tracing::debug!(%peer, "h2 client stopped answering PINGs");
                gone = true;
                conn.abrupt_shutdown(Reason::NO_ERROR);
            }
        }
    }
}

/// The request's Content-Length, when it declares a valid one. Repeats of the same value
/// count as one, as hyper counted them; different values give none (and the handler's
/// framing check refuses the request).
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let first = values.next()?;
    if values.any(|v| v != first) {
        return None;
    }
    first.to_str().ok()?.parse().ok()
}

pin_project! {
    /// One stream's answer: the handler's response, then its body as the peer's flow
    /// control allows. A client that resets the stream first cancels the handler (and so
    /// whatever it had sent upstream).
    pub struct Answer<F, B> {
        #[pin]
        work: Option<F>,
        reply: Option<SendResponse<Bytes>>,
        sending: Option<(B, SendStream<Bytes>)>,
        // Data taken from the body, waiting for send capacity; and whether it ends it.
        held: Option<(Bytes, bool)>,
    }
}

impl<F, B> Answer<F, B> {
    fn new(work: F, reply: SendResponse<Bytes>) -> Self {
        Self {
            work: Some(work),
            reply: Some(reply),
            sending: None,
            held: None,
        }
    }
}

impl<F, B> Future for Answer<F, B>
where
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if let Some(work) = this.work.as_mut().as_pin_mut() {
            let Some(reply) = this.reply.as_mut() else {
                return Poll::Ready(());
            };
            let rsp = match work.poll(cx) {
                Poll::Ready(rsp) => rsp,
                Poll::Pending => {
                    if reply.poll_reset(cx).is_ready() {
                        this.work.set(None);
                        return Poll::Ready(());
                    }
                    return Poll::Pending;
                }
            };
            this.work.set(None);
            let (mut head, body) = rsp.into_parts();
            // Connection-specific headers are not HTTP/2 (h2 refuses a response carrying
            // them). A proxied response has had them stripped; a refusal of a malformed
            // request (a 4xx) may say `close`.
            if head.status.is_client_error() {
                head.headers.remove(header::CONNECTION);
            }
            let end = body.is_end_stream();
            if !end {
                if let Some(n) = body.size_hint().exact() {
                    if !head.headers.contains_key(header::CONTENT_LENGTH) {
                        head.headers
                            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
                    }
                }
            }
            let Some(mut reply) = this.reply.take() else {
                return Poll::Ready(());
            };
            match reply.send_response(Response::from_parts(head, ()), end) {
                Ok(tx) if !end => *this.sending = Some((body, tx)),
                Ok(_) => return Poll::Ready(()),
                Err(e) => {
                    tracing::debug!(error = %e, "h2 response refused");
                    reply.send_reset(Reason::INTERNAL_ERROR);
                    return Poll::Ready(());
                }
            }
        }
        let Some((body, tx)) = this.sending.as_mut() else {
            return Poll::Ready(());
        };
        send_body(body, tx, this.held, Reason::INTERNAL_ERROR, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_length_is_one_value_however_often_it_is_repeated() {
        let length = |values: &[&str]| {
            let mut h = http::HeaderMap::new();
            for v in values {
                h.append(header::CONTENT_LENGTH, HeaderValue::from_str(v).unwrap());
            }
            declared_length(&h)
        };
        assert_eq!(length(&[]), None);
        assert_eq!(length(&["5"]), Some(5));
        assert_eq!(length(&["5", "5"]), Some(5));
        assert_eq!(length(&["5", "6"]), None);
        assert_eq!(length(&["five"]), None);
    }
}
