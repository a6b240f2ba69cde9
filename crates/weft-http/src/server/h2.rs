//! One h2c connection (HTTP/2 with prior knowledge), on the `h2` crate directly: each
//! stream's request goes to the handler in a task of its own, and its [`Answer`] sends the
//! response back under flow control.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, SendStream};
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::sync::watch;

use super::h1::Limits;
use super::recv::ClientBody;
use crate::error::BoxError;
use crate::h2::body::{send_body, H2Body};
use crate::h2::{keep_alive, CONNECTION_WINDOW, STREAM_WINDOW};
use crate::socket::Rewind;

/// Streams one connection may have open at once (hyper's default, kept).
const MAX_STREAMS: u32 = 200;
/// Resets this server sends for a client's protocol errors before it closes the connection
/// (h2's own default, said here: hyper's callers have found it unset).
const MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// Rapid reset (CVE-2023-44487) past what h2 catches: a client that resets streams after
/// they were accepted (and sent upstream) but before their answer. Legitimate clients give
/// up on some calls, even most in a bad moment; one that gives up on nine in ten of what it
/// opens, past this many, is closed with ENHANCE_YOUR_CALM.
const EARLY_RESET_FLOOR: u32 = 100;
/// Counts are halved when this many streams have been accepted, so the verdict is on a
/// connection's recent streams, not its whole life.
const RESET_WINDOW: u32 = 2048;

/// Serves one h2c connection until the client closes it, it breaks, its PINGs go
/// unanswered, or the proxy drains (GOAWAY, then in-flight streams finish).
pub async fn serve<H, F, B>(
    io: Rewind,
    peer: SocketAddr,
    limits: &Limits,
    mut shutdown: watch::Receiver<bool>,
    handler: H,
) where
    H: Fn(SocketAddr, Request<ClientBody>) -> F,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
{
    let stats = io.stats();
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_STREAMS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS));
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
    // Streams the client reset before their answer, counted by each stream's task.
    let counts = Arc::new(ConnCounts::default());
    let mut accepted_streams: u32 = 0;
    // Idle: no stream open at two ticks in a row with none accepted between them.
    let mut idle_check = tokio::time::interval(limits.idle_timeout / 2);
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut idle_ticks, mut seen_streams) = (0u32, 0u32);
    loop {
        // Biased: streams first (the others are rare), and no random draw per poll.
        tokio::select! {
            biased;
            accepted = conn.accept() => match accepted {
                Some(Ok(_)) if gone => {}
                Some(Ok((req, mut reply))) => {
                    accepted_streams += 1;
                    let resets = counts.early_resets.load(Ordering::Relaxed);
                    if limits.police_resets
                        && resets >= EARLY_RESET_FLOOR
                        && resets.saturating_mul(10) >= accepted_streams.saturating_mul(9)
                    {
                        tracing::warn!(%peer, resets, streams = accepted_streams, "h2 client resets most streams before their answer (rapid reset): closing its connection");
                        stats.h2_abuse("rapid_reset");
                        reply.send_reset(Reason::ENHANCE_YOUR_CALM);
                        gone = true;
                        conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                        continue;
                    }
                    if accepted_streams >= RESET_WINDOW {
                        accepted_streams /= 2;
                        let _ = counts.early_resets.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| Some(r / 2));
                    }
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
                    tokio::spawn(Answer::<_, B>::new(work, reply, Counted::new(&counts)));
                }
                Some(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "h2 connection ended with an error");
                    if let Some(reason) = abuse(&e) {
                        stats.h2_abuse(reason);
                    }
                    return;
                }
                None => return,
            },
            _ = &mut drain, if !draining => {
                draining = true;
                conn.graceful_shutdown();
            }
            _ = idle_check.tick(), if !draining => {
                let quiet = counts.open.load(Ordering::Relaxed) == 0 && seen_streams == accepted_streams;
                idle_ticks = if quiet { idle_ticks + 1 } else { 0 };
                seen_streams = accepted_streams;
                // The first tick is at once: two quiet ticks after it span half the timeout
                // at least, three the whole of it.
                if idle_ticks > 2 {
                    tracing::debug!(%peer, "h2 connection idle: closing it");
                    draining = true;
                    conn.graceful_shutdown();
                }
            }
            () = &mut unanswered, if !gone => {
                tracing::debug!(%peer, "h2 client stopped answering PINGs");
                gone = true;
                conn.abrupt_shutdown(Reason::NO_ERROR);
            }
        }
    }
}

/// Why h2 closed a client's connection, when the client broke the protocol (rather than
/// went away): `flow_control` (a window pushed past its maximum), `calm` (h2's own floods:
/// resets before accept, header blocks past the limit), `protocol` (the rest).
fn abuse(e: &h2::Error) -> Option<&'static str> {
    if e.is_io() || e.is_remote() {
        return None;
    }
    match e.reason()? {
        Reason::NO_ERROR | Reason::CANCEL => None,
        Reason::FLOW_CONTROL_ERROR => Some("flow_control"),
        Reason::ENHANCE_YOUR_CALM => Some("calm"),
        _ => Some("protocol"),
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
        counts: Counted,
    }
}

/// A connection's counts: streams open, and those the client reset before their answer.
#[derive(Default)]
struct ConnCounts {
    early_resets: AtomicU32,
    open: AtomicU32,
}

/// A stream's part in its connection's counts, for as long as it is open.
struct Counted(Arc<ConnCounts>);

impl Counted {
    fn new(counts: &Arc<ConnCounts>) -> Self {
        counts.open.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(counts))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<F, B> Answer<F, B> {
    fn new(work: F, reply: SendResponse<Bytes>, counts: Counted) -> Self {
        Self {
            work: Some(work),
            reply: Some(reply),
            sending: None,
            held: None,
            counts,
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
                        this.counts.0.early_resets.fetch_add(1, Ordering::Relaxed);
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
