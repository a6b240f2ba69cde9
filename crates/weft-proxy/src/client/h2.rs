//! One shared HTTP/2 connection per upstream address, multiplexing every request to it.
//! Requests find a live connection without locking; only (re)connecting takes a lock, so a
//! burst to a new peer opens one connection, not one per request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::RequestBody;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use weft_core::ProxyError;

use super::connect::Connector;
use super::SendError;

/// Flow-control windows of the HTTP/2 hop, fixed and generous (as Envoy's are): an adaptive
/// window estimates bandwidth with a PING per burst of data, which costs a write and a
/// wake-up on both proxies for every small response.
pub const STREAM_WINDOW: u32 = 1024 * 1024;
pub const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;

pub struct H2Pool {
    connector: Connector,
    idle_timeout: Duration,
    epoch: Instant,
    slots: Mutex<HashMap<SocketAddr, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    current: ArcSwapOption<SendRequest<RequestBody>>,
    connecting: tokio::sync::Mutex<()>,
    last_used_ms: AtomicU64,
}

impl H2Pool {
    pub fn new(connector: Connector, idle_timeout: Duration) -> Arc<Self> {
        let pool = Arc::new(Self {
            connector,
            idle_timeout,
            epoch: Instant::now(),
            slots: Mutex::new(HashMap::new()),
        });
        super::spawn_reaper(&pool, idle_timeout, Self::reap);
        pool
    }

    pub async fn send(
        &self,
        endpoint: SocketAddr,
        req: Request<RequestBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let slot = self.slot(endpoint);
        slot.last_used_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        let mut sender = match self.sender(&slot, endpoint).await {
            Ok(s) => s,
            Err(error) => {
                return Err(SendError {
                    error,
                    request: Some(req),
                })
            }
        };
        if let Err(e) = sender.ready().await {
            return Err(super::upstream_error(endpoint, &e).into());
        }
        sender
            .send_request(req)
            .await
            .map_err(|e| super::upstream_error(endpoint, &e).into())
    }

    fn slot(&self, endpoint: SocketAddr) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(slots.entry(endpoint).or_default())
    }

    async fn sender(
        &self,
        slot: &Slot,
        endpoint: SocketAddr,
    ) -> Result<SendRequest<RequestBody>, ProxyError> {
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
            let io = TokioIo::new(self.connector.connect(endpoint).await?);
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .keep_alive_interval(Duration::from_secs(20))
                .keep_alive_timeout(Duration::from_secs(10))
                .handshake(io)
                .await
                .map_err(|e| super::upstream_error(endpoint, &e))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%endpoint, error = %e, "h2 connection ended");
                }
            });
            Ok::<_, ProxyError>(sender)
        })
        .await?;
        slot.current.store(Some(Arc::new(sender.clone())));
        Ok(sender)
    }

    fn reap(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        let limit = self.idle_timeout.as_millis() as u64;
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Dropping our sender lets the connection close once its in-flight streams finish.
        slots.retain(|_, s| now.saturating_sub(s.last_used_ms.load(Ordering::Relaxed)) < limit);
    }

    /// Addresses with a live shared connection.
    pub fn connected(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.values().filter(|s| live(s).is_some()).count()
    }
}

fn live(slot: &Slot) -> Option<SendRequest<RequestBody>> {
    let guard = slot.current.load();
    let s = guard.as_ref()?;
    if s.is_closed() {
        None
    } else {
        Some(SendRequest::clone(s))
    }
}
