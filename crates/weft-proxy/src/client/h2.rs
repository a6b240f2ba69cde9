//! One shared HTTP/2 connection per upstream address, multiplexing every request to it.
//! Requests find a live connection without locking; only (re)connecting takes a lock, so a
//! burst to a new peer opens one connection, not one per request.
//!
//! It speaks through the `h2` crate directly: the forwarding task sends the request and
//! awaits the response itself, and reads the response body off the stream — no task and no
//! channel per request. Only a request body is piped by a task of its own, since it may
//! stream while the response does (gRPC).

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Reason, SendStream};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use weft_core::ProxyError;

use super::connect::Connector;
use super::{reset, SendError};
use crate::body::{BoxError, RequestBody};
use crate::FastMap;

/// Flow-control windows of the HTTP/2 hop, fixed and generous (as Envoy's are): an adaptive
/// window estimates bandwidth with a PING per burst of data, which costs a write and a
/// wake-up on both proxies for every small response.
pub const STREAM_WINDOW: u32 = 1024 * 1024;
pub const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// The largest last chunk of a body sent without first claiming window for it: h2 holds
/// what the window does not yet allow, so this bounds what a stream can hold that way.
const UNCLAIMED_LAST_CHUNK: usize = 16 * 1024;
/// A peer that does not answer a PING this long after one is sent is taken for dead.
const PING_EVERY: Duration = Duration::from_secs(20);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

pub struct H2Pool {
    connector: Connector,
    idle_timeout: Duration,
    epoch: Instant,
    slots: Mutex<FastMap<SocketAddr, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    current: ArcSwapOption<SendRequest<Bytes>>,
    connecting: tokio::sync::Mutex<()>,
    last_used_ms: AtomicU64,
}

impl H2Pool {
    pub fn new(connector: Connector, idle_timeout: Duration) -> Arc<Self> {
        let pool = Arc::new(Self {
            connector,
            idle_timeout,
            epoch: Instant::now(),
            slots: Mutex::new(FastMap::default()),
        });
        super::spawn_reaper(&pool, idle_timeout, Self::reap);
        pool
    }

    pub async fn send(
        &self,
        endpoint: SocketAddr,
        req: Request<RequestBody>,
    ) -> Result<Response<H2Body>, SendError> {
        let slot = self.slot(endpoint);
        slot.last_used_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        let sender = match self.sender(&slot, endpoint).await {
            Ok(s) => s,
            Err(error) => {
                return Err(SendError {
                    error,
                    request: Some(Box::new(req)),
                })
            }
        };
        let mut sender = match sender.ready().await {
            Ok(s) => s,
            Err(e) => {
                // The connection died since it was stored: the request never left.
                slot.current.store(None);
                return Err(SendError {
                    error: reset(endpoint, &e),
                    request: Some(Box::new(req)),
                });
            }
        };
        let (parts, body) = req.into_parts();
        let eos = body.is_end_stream();
        let (response, stream) = sender
            .send_request(Request::from_parts(parts, ()), eos)
            .map_err(|e| reset(endpoint, &e))?;
        if !eos {
            tokio::spawn(pipe(body, stream));
        }
        let response = response.await.map_err(|e| reset(endpoint, &e))?;
        Ok(response.map(|recv| H2Body::new(recv, None)))
    }

    fn slot(&self, endpoint: SocketAddr) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(slots.entry(endpoint).or_default())
    }

    async fn sender(
        &self,
        slot: &Arc<Slot>,
        endpoint: SocketAddr,
    ) -> Result<SendRequest<Bytes>, ProxyError> {
        if let Some(s) = live(slot) {
            return Ok(s);
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(s) = live(slot) {
            return Ok(s);
        }
        // The connecting path is boxed: it is rare, and its state would otherwise enlarge
        // every request's future.
        let sender = Box::pin(async {
            let io = self.connector.connect(endpoint).await?;
            let (sender, mut conn) = h2::client::Builder::new()
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .enable_push(false)
                .handshake::<_, Bytes>(io)
                .await
                .map_err(|e| reset(endpoint, &e))?;
            let pings = conn.ping_pong();
            let sender = Arc::new(sender);
            let weak = Arc::downgrade(slot);
            let mine = Arc::clone(&sender);
            tokio::spawn(async move {
                let ended = tokio::select! {
                    biased;
                    ended = &mut conn => ended,
                    () = keep_alive(pings) => Ok(()),
                };
                if let Err(e) = ended {
                    tracing::debug!(%endpoint, error = %e, "h2 connection ended");
                }
                // Later requests connect afresh instead of finding a dead connection.
                if let Some(slot) = weak.upgrade() {
                    slot.current.compare_and_swap(&Some(mine), None);
                }
            });
            Ok::<_, ProxyError>(sender)
        })
        .await?;
        let ready = SendRequest::clone(&sender);
        slot.current.store(Some(sender));
        Ok(ready)
    }

    fn reap(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        let limit = self.idle_timeout.as_millis() as u64;
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Dropping our sender lets the connection close once its in-flight streams finish.
        slots.retain(|_, s| now.saturating_sub(s.last_used_ms.load(Ordering::Relaxed)) < limit);
    }
}

fn live(slot: &Slot) -> Option<SendRequest<Bytes>> {
    let guard = slot.current.load();
    guard.as_ref().map(|s| SendRequest::clone(s))
}

/// PINGs the peer now and then; returns when one goes unanswered (the peer is gone). Without
/// `pings` (h2 hands them out once per connection) it never returns.
pub(crate) async fn keep_alive(pings: Option<h2::PingPong>) {
    let Some(mut pings) = pings else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(PING_EVERY).await;
        let answered = tokio::time::timeout(PING_TIMEOUT, pings.ping(h2::Ping::opaque())).await;
        if !matches!(answered, Ok(Ok(_))) {
            return;
        }
    }
}

/// Streams a request body onto its HTTP/2 stream as flow control allows; a peer that
/// resets the stream, or a client body that fails, ends it.
async fn pipe(mut body: RequestBody, mut tx: SendStream<Bytes>) {
    let mut held = None;
    poll_fn(|cx| send_body(&mut body, &mut tx, &mut held, Reason::CANCEL, cx)).await;
}

/// Sends `body` on `tx` as flow control allows, until it ends, the peer resets the stream,
/// or the body fails (the stream is then reset with `failed`). Both directions use it: a
/// request body to an upstream, a response body to an h2c client. `held` keeps a chunk
/// taken from the body while it waits for send capacity.
pub(crate) fn send_body<B>(
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
                    // and what it holds is bounded by this size per stream. The claim and the
                    // wait for it took four more turns of the streams' lock per body.
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
}

impl H2Body {
    pub fn new(recv: h2::RecvStream, length: Option<u64>) -> Self {
        Self {
            recv,
            left: length,
            data_done: false,
            done: false,
        }
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
