//! A lean HTTP/1.1 pool: idle connections per endpoint, newest first, reaped when idle too
//! long. A connection returns to the pool only when its response body was read to the end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::RequestBody;
use hyper::client::conn::http1::{self, SendRequest};
use weft_core::ProxyError;

use super::connect::Connector;
use super::SendError;

/// Waiting this long for a just-returned connection to become ready is cheaper than a new one.
const READY_WAIT: Duration = Duration::from_millis(200);

pub struct H1Pool {
    connector: Connector,
    idle_timeout: Duration,
    max_idle: usize,
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
}

struct Idle {
    sender: SendRequest<RequestBody>,
    since: Instant,
}

/// Gives a connection back to its pool when the response that used it ends cleanly.
pub struct PoolReturn {
    pool: Weak<H1Pool>,
    endpoint: SocketAddr,
    sender: SendRequest<RequestBody>,
}

impl PoolReturn {
    pub fn give_back(self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.put(self.endpoint, self.sender);
        }
    }
}

impl H1Pool {
    pub fn new(connector: Connector, idle_timeout: Duration, max_idle: usize) -> Arc<Self> {
        let pool = Arc::new(Self {
            connector,
            idle_timeout,
            max_idle,
            idle: Mutex::new(HashMap::new()),
        });
        super::spawn_reaper(&pool, idle_timeout, Self::reap);
        pool
    }

    /// Sends a request on a pooled connection (or a new one). A request that never left
    /// because a pooled connection had just closed is resent once on a fresh connection.
    pub async fn send(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, PoolReturn), SendError> {
        let (mut sender, pooled) = match self.checkout(endpoint).await {
            Some(s) => (s, true),
            None => match Box::pin(self.connect(endpoint)).await {
                Ok(s) => (s, false),
                Err(error) => {
                    return Err(SendError {
                        error,
                        request: Some(req),
                    })
                }
            },
        };
        let req = match sender.try_send_request(req).await {
            Ok(rsp) => return Ok((rsp, self.returner(endpoint, sender))),
            Err(mut e) => match e.take_message() {
                Some(req) if pooled => req,
                _ => return Err(super::upstream_error(endpoint, e.error()).into()),
            },
        };
        let mut sender = match Box::pin(self.connect(endpoint)).await {
            Ok(s) => s,
            Err(error) => {
                return Err(SendError {
                    error,
                    request: Some(req),
                })
            }
        };
        match sender.send_request(req).await {
            Ok(rsp) => Ok((rsp, self.returner(endpoint, sender))),
            Err(e) => Err(super::upstream_error(endpoint, &e).into()),
        }
    }

    /// A dedicated connection for an upgrade (WebSocket); never pooled.
    pub async fn send_upgrade(
        &self,
        endpoint: SocketAddr,
        req: Request<RequestBody>,
    ) -> Result<Response<Incoming>, ProxyError> {
        let io = self.connector.connect(endpoint).await?;
        let (mut sender, conn) = http1::handshake(io)
            .await
            .map_err(|e| super::upstream_error(endpoint, &e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%endpoint, error = %e, "upgrade connection ended");
            }
        });
        sender
            .send_request(req)
            .await
            .map_err(|e| super::upstream_error(endpoint, &e))
    }

    fn returner(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        sender: SendRequest<RequestBody>,
    ) -> PoolReturn {
        PoolReturn {
            pool: Arc::downgrade(self),
            endpoint,
            sender,
        }
    }

    async fn checkout(&self, endpoint: SocketAddr) -> Option<SendRequest<RequestBody>> {
        loop {
            let mut sender = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let list = idle.get_mut(&endpoint)?;
                let entry = list.pop()?;
                if list.is_empty() {
                    idle.remove(&endpoint);
                }
                entry.sender
            };
            if sender.is_closed() {
                continue;
            }
            if sender.is_ready() {
                return Some(sender);
            }
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, sender.ready()).await {
                return Some(sender);
            }
        }
    }

    async fn connect(&self, endpoint: SocketAddr) -> Result<SendRequest<RequestBody>, ProxyError> {
        let io = self.connector.connect(endpoint).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| super::upstream_error(endpoint, &e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%endpoint, error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }

    fn put(&self, endpoint: SocketAddr, sender: SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(endpoint).or_default();
        if list.len() < self.max_idle {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    fn reap(&self) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|_, list| {
            list.retain(|i| !i.sender.is_closed() && now - i.since < self.idle_timeout);
            !list.is_empty()
        });
    }

    /// Idle connections currently held, for tests and the admin API.
    pub fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(Vec::len).sum()
    }
}
