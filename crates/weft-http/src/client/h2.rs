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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Reason, SendStream};
use http::{Request, Response};
use http_body::Body;

use super::connect::{Connector, Speaks};
use super::reap::spawn_reaper;
use crate::error::{BoxError, Error, SendError};
use crate::h1::head::MAX_HEADERS;
use crate::h1::response::MAX_RESPONSE_HEAD;
use crate::h2::body::{send_body, H2Body};
use crate::h2::{keep_alive, CONNECTION_WINDOW, STREAM_WINDOW};
use crate::FastMap;

/// The largest response header list taken (h2 counts 32 bytes per field on top of its name
/// and value): what the HTTP/1.1 client takes, so an answer that crossed a peer proxy's
/// limit is not refused at this one. h2's default would take 16 MiB.
const MAX_RESPONSE_HEADER_LIST: u32 = (MAX_RESPONSE_HEAD + 32 * MAX_HEADERS) as u32;

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
        spawn_reaper(&pool, idle_timeout, Self::reap);
        pool
    }

    /// Sends a request on the address's shared connection (made first if there is none).
    /// `name` is the node of the peer proxy there, when known: a new connection's TLS checks
    /// the peer's identity against it.
    pub async fn send<B>(
        &self,
        endpoint: SocketAddr,
        name: Option<&str>,
        req: Request<B>,
    ) -> Result<Response<H2Body>, SendError<B>>
    where
        B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
    {
        let slot = self.slot(endpoint);
        slot.last_used_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        let sender = match self.sender(&slot, endpoint, name).await {
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
                    error: Error::reset(endpoint, &e),
                    request: Some(Box::new(req)),
                });
            }
        };
        let (parts, body) = req.into_parts();
        let eos = body.is_end_stream();
        let (response, stream) = sender
            .send_request(Request::from_parts(parts, ()), eos)
            .map_err(|e| Error::reset(endpoint, &e))?;
        if !eos {
            tokio::spawn(pipe(body, stream));
        }
        let response = response.await.map_err(|e| Error::reset(endpoint, &e))?;
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
        name: Option<&str>,
    ) -> Result<SendRequest<Bytes>, Error> {
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
            let io = self.connector.open(endpoint, Speaks::H2, name).await?;
            let (sender, mut conn) = h2::client::Builder::new()
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .max_header_list_size(MAX_RESPONSE_HEADER_LIST)
                .enable_push(false)
                .handshake::<_, Bytes>(io)
                .await
                .map_err(|e| Error::reset(endpoint, &e))?;
            let pings = conn.ping_pong();
            let sender = Arc::new(sender);
            let weak = Arc::downgrade(slot);
            // Weak: a strong handle here would keep the connection open after the pool has
            // let it go (reaped or retired), since h2 closes only when no sender is left.
            let mine = Arc::downgrade(&sender);
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
                    let current = slot.current.load();
                    let ours = current
                        .as_ref()
                        .is_some_and(|c| std::ptr::eq(Arc::as_ptr(c), mine.as_ptr()));
                    if ours {
                        slot.current.compare_and_swap(&*current, None);
                    }
                }
            });
            Ok::<_, Error>(sender)
        })
        .await?;
        let ready = SendRequest::clone(&sender);
        slot.current.store(Some(sender));
        Ok(ready)
    }

    /// Sends later requests on new connections; each old one closes once its in-flight
    /// streams end (so new TLS handshakes show a renewed certificate).
    pub fn retire_all(&self) {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for slot in slots.values() {
            slot.current.store(None);
        }
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

/// Streams a request body onto its HTTP/2 stream as flow control allows; a peer that
/// resets the stream, or a client body that fails, ends it.
async fn pipe<B>(mut body: B, mut tx: SendStream<Bytes>)
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let mut held = None;
    poll_fn(|cx| send_body(&mut body, &mut tx, &mut held, Reason::CANCEL, cx)).await;
}
