//! Shared HTTP/2 connections per upstream address, multiplexing every request to it: one,
//! and another each time all are full (as many streams open as the peer allows), up to
//! [`MAX_CONNECTIONS`] — so one app's long calls to a peer proxy cannot take every stream
//! other apps' calls to it need. Requests find a live connection without locking; only
//! (re)connecting takes a lock, so a burst to a new peer opens one connection, not one per
//! request.
//!
//! It speaks through the `h2` crate directly: the forwarding task sends the request and
//! awaits the response itself, and reads the response body off the stream — no task and no
//! channel per request. Only a request body is piped by a task of its own, since it may
//! stream while the response does (gRPC).

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
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
use crate::socket;
use crate::FastMap;

/// The largest response header list taken (h2 counts 32 bytes per field on top of its name
/// and value): what the HTTP/1.1 client takes, so an answer that crossed a peer proxy's
/// limit is not refused at this one. h2's default would take 16 MiB.
const MAX_RESPONSE_HEADER_LIST: u32 = (MAX_RESPONSE_HEAD + 32 * MAX_HEADERS) as u32;

/// Connections to one address at most: past this, requests queue for streams on the least
/// loaded (h2 holds them until one frees).
pub const MAX_CONNECTIONS: usize = 8;
/// Streams used on one connection at most, whatever the peer allows.
const MAX_STREAMS_PER_CONNECTION: usize = 1000;
/// SETTINGS_MAX_CONCURRENT_STREAMS should be no smaller than this (RFC 9113, 6.5.2).
const MIN_PEER_STREAMS: usize = 100;

pub struct H2Pool {
    connector: Connector,
    idle_timeout: Duration,
    epoch: Instant,
    slots: Mutex<FastMap<SocketAddr, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    /// Live connections, the earliest first: a request takes the first with a stream free.
    conns: ArcSwap<Vec<Arc<Conn>>>,
    connecting: tokio::sync::Mutex<()>,
    last_used_ms: AtomicU64,
}

struct Conn {
    sender: SendRequest<Bytes>,
    /// Streams this pool has open on it.
    open: Arc<AtomicUsize>,
}

impl Conn {
    fn full(&self) -> bool {
        let open = self.open.load(Ordering::Relaxed);
        // Below what RFC 9113 asks every peer to allow, the peer's setting (behind h2's
        // lock) need not be read.
        open >= MIN_PEER_STREAMS
            && open
                >= self
                    .sender
                    .current_max_send_streams()
                    .min(MAX_STREAMS_PER_CONNECTION)
    }
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
        let conn = match self.sender(&slot, endpoint, name).await {
            Ok(c) => c,
            Err(error) => {
                return Err(SendError {
                    error,
                    request: Some(Box::new(req)),
                })
            }
        };
        // Counted from before it is sent, so a burst spreads over connections.
        let counted = socket::Slot::hold(&conn.open);
        let mut sender = match conn.sender.clone().ready().await {
            Ok(s) => s,
            Err(e) => {
                // The connection died, or the peer sent GOAWAY, since it was stored: the
                // request never left, so it may go again whatever its method.
                forget(&slot, &conn);
                return Err(SendError {
                    error: Error::unsent(endpoint, &e),
                    request: Some(Box::new(req)),
                });
            }
        };
        let (parts, body) = req.into_parts();
        let eos = body.is_end_stream();
        let (response, stream) = sender
            .send_request(Request::from_parts(parts, ()), eos)
            .map_err(|e| {
                forget(&slot, &conn);
                Error::unsent(endpoint, &e)
            })?;
        if !eos {
            tokio::spawn(pipe(body, stream));
        }
        let response = response.await.map_err(|e| Error::from_h2(endpoint, &e))?;
        Ok(response.map(|recv| H2Body::new(recv, None).counted(counted)))
    }

    fn slot(&self, endpoint: SocketAddr) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(slots.entry(endpoint).or_default())
    }

    /// A connection with a stream free: a live one, or a new one when all are full (while
    /// there are fewer than [`MAX_CONNECTIONS`]; else the least loaded).
    async fn sender(
        &self,
        slot: &Arc<Slot>,
        endpoint: SocketAddr,
        name: Option<&str>,
    ) -> Result<Arc<Conn>, Error> {
        if let Some(c) = free(slot) {
            return Ok(c);
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(c) = free(slot) {
            return Ok(c);
        }
        if slot.conns.load().len() >= MAX_CONNECTIONS {
            if let Some(c) = least_loaded(slot) {
                return Ok(c);
            }
        }
        // The connecting path is boxed: it is rare, and its state would otherwise enlarge
        // every request's future.
        let conn = Box::pin(async {
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
            let ours = Arc::new(Conn {
                sender,
                open: Arc::default(),
            });
            let weak = Arc::downgrade(slot);
            // Weak: a strong handle here would keep the connection open after the pool has
            // let it go (reaped or retired), since h2 closes only when no sender is left.
            let mine = Arc::downgrade(&ours);
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
                if let (Some(slot), Some(conn)) = (weak.upgrade(), mine.upgrade()) {
                    forget(&slot, &conn);
                }
            });
            Ok::<_, Error>(ours)
        })
        .await;
        let conn = match conn {
            Ok(c) => c,
            // Another connection could not be made (the peer at its limit, say): the
            // request waits for a stream on one there is rather than fail.
            Err(e) => return least_loaded(slot).ok_or(e),
        };
        slot.conns.rcu(|conns| {
            let mut next = Vec::clone(conns);
            next.push(Arc::clone(&conn));
            next
        });
        Ok(conn)
    }

    /// Sends later requests on new connections; each old one closes once its in-flight
    /// streams end (so new TLS handshakes show a renewed certificate).
    pub fn retire_all(&self) {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for slot in slots.values() {
            slot.conns.store(Arc::default());
        }
    }

    fn reap(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        let limit = self.idle_timeout.as_millis() as u64;
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Dropping our sender lets the connection close once its in-flight streams finish.
        slots.retain(|_, s| now.saturating_sub(s.last_used_ms.load(Ordering::Relaxed)) < limit);
        // A connection opened for a burst goes once it carries nothing; the first stays.
        for slot in slots.values() {
            let conns = slot.conns.load();
            if conns
                .iter()
                .skip(1)
                .any(|c| c.open.load(Ordering::Relaxed) == 0)
            {
                slot.conns.rcu(|conns| {
                    conns
                        .iter()
                        .enumerate()
                        .filter(|(i, c)| *i == 0 || c.open.load(Ordering::Relaxed) > 0)
                        .map(|(_, c)| Arc::clone(c))
                        .collect::<Vec<_>>()
                });
            }
        }
    }
}

/// The live connection with the fewest streams open.
fn least_loaded(slot: &Slot) -> Option<Arc<Conn>> {
    slot.conns
        .load()
        .iter()
        .min_by_key(|c| c.open.load(Ordering::Relaxed))
        .cloned()
}

/// The first live connection with a stream free.
fn free(slot: &Slot) -> Option<Arc<Conn>> {
    slot.conns.load().iter().find(|c| !c.full()).cloned()
}

/// Takes `conn` out of the slot: it died, or is dying.
fn forget(slot: &Slot, conn: &Arc<Conn>) {
    slot.conns.rcu(|conns| {
        conns
            .iter()
            .filter(|c| !Arc::ptr_eq(c, conn))
            .cloned()
            .collect::<Vec<_>>()
    });
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
