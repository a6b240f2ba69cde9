//! Accepts connections and serves HTTP/1.x ([`super::h1`]) and HTTP/2 with prior knowledge
//! ([`super::h2`]) on the same port, in plaintext or, where configured, mutual TLS
//! ([`super::tls`]). On shutdown it stops accepting, lets in-flight requests
//! finish within the grace period, and closes idle connections.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body::Body;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::h1::{self, Handoff, Limits};
use super::h2;
use super::recv::ClientBody;
use super::tls::{self, ServerTls};
use crate::error::BoxError;
use crate::socket::{Rewind, Slot, Socket, Stats, Stream};

/// Serves `handler(peer, request)` on every connection `listener` accepts until `shutdown`
/// turns true, then waits up to the grace period for the connections to finish. With
/// [`Limits::accept_while_draining`], it goes on taking (and serving) new connections until
/// the ones it had are done, then tells the new ones to finish too.
pub async fn serve<H, F, B>(
    listener: TcpListener,
    limits: Limits,
    tls: Option<Arc<ServerTls>>,
    stats: Stats,
    shutdown: watch::Receiver<bool>,
    handler: H,
) where
    H: Fn(SocketAddr, Request<ClientBody>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
{
    // Every connection holds a receiver; the sender sees them all gone when the last ends.
    let (alive, _) = watch::channel(());
    let accept = Accept {
        listener,
        limits,
        tls,
        stats,
        handler,
        open: Arc::default(),
    };
    let mut stop = shutdown.clone();
    while let Some((stream, peer)) = accept.next(&mut stop).await {
        accept.spawn(stream, peer, shutdown.clone(), alive.subscribe());
    }
    let deadline = tokio::time::Instant::now() + limits.shutdown_grace;
    let late = if limits.accept_while_draining {
        // Connections taken from now on are served as usual until the earlier ones are
        // done, then drained like them. Taking stops with a third of the grace left, so
        // the last taken have time to finish too.
        let take_until = deadline - limits.shutdown_grace / 3;
        let (late_stop, late_shutdown) = watch::channel(false);
        let (late_alive, _) = watch::channel(());
        let mut earlier_done = std::pin::pin!(alive.closed());
        let mut never = late_shutdown.clone();
        loop {
            tokio::select! {
                accepted = accept.next(&mut never) => match accepted {
                    Some((stream, peer)) => {
                        accept.spawn(stream, peer, late_shutdown.clone(), late_alive.subscribe());
                    }
                    None => break,
                },
                () = &mut earlier_done => break,
                () = tokio::time::sleep_until(take_until) => break,
            }
        }
        late_stop.send_replace(true);
        Some(late_alive)
    } else {
        None
    };
    drop(accept);
    let all_done = async {
        alive.closed().await;
        if let Some(late) = &late {
            late.closed().await;
        }
    };
    if tokio::time::timeout_at(deadline, all_done).await.is_err() {
        tracing::warn!(grace = ?limits.shutdown_grace, "connections still open after the grace period");
    }
}

/// A listener and what its connections are served with.
struct Accept<H> {
    listener: TcpListener,
    limits: Limits,
    tls: Option<Arc<ServerTls>>,
    stats: Stats,
    handler: H,
    /// Connections open now.
    open: Arc<AtomicUsize>,
}

/// What a connection past the listener's limit is told (in plaintext: a TLS client reads
/// only the close).
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nweft-error: overloaded\r\n\
    content-type: text/plain\r\ncontent-length: 41\r\nconnection: close\r\n\r\n\
    weft: too many connections to this proxy\n";

impl<H> Accept<H> {
    /// The next connection, or `None` once `stop` turns true.
    async fn next(&self, stop: &mut watch::Receiver<bool>) -> Option<(TcpStream, SocketAddr)> {
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = stop.wait_for(|stop| *stop) => return None,
            };
            match accepted {
                Ok(a) => return Some(a),
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Serves `stream` on a task of its own, holding `alive` while it lives.
    fn spawn<F, B>(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: watch::Receiver<bool>,
        alive: watch::Receiver<()>,
    ) where
        H: Fn(SocketAddr, Request<ClientBody>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<B>> + Send + 'static,
        B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
    {
        let _ = stream.set_nodelay(true);
        let Some(slot) = Slot::take(&self.open, self.limits.max_connections) else {
            self.stats.overloaded();
            let plaintext = self.tls.is_none();
            tokio::spawn(async move {
                let mut stream = stream;
                if plaintext {
                    use tokio::io::AsyncWriteExt;
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), stream.write_all(OVERLOADED))
                            .await;
                }
            });
            return;
        };
        let handler = self.handler.clone();
        let limits = self.limits;
        let (tls, stats) = (self.tls.clone(), Arc::clone(&self.stats));
        tokio::spawn(async move {
            let _alive = alive;
            let (stream, identity) = match tls {
                None => (Stream::Tcp(stream), None),
                Some(tls) => {
                    match tls::accept(stream, peer, &tls, limits.header_read_timeout, &stats).await
                    {
                        Some(s) => {
                            let identity = tls::peer_identity(&s, &tls);
                            (s, identity)
                        }
                        None => return,
                    }
                }
            };
            // The place goes with the socket: an upgrade or a tunnel keeps it while it relays.
            let io = Rewind::new(BytesMut::new(), Socket::new(stream, &stats).holding(slot));
            match identity {
                None => serve_connection(io, peer, limits, shutdown, handler).await,
                // Every request on the connection says who sent it.
                Some(id) => {
                    let named = move |peer, mut req: Request<ClientBody>| {
                        req.extensions_mut().insert(id.clone());
                        handler(peer, req)
                    };
                    serve_connection(io, peer, limits, shutdown, named).await;
                }
            }
        });
    }
}

/// Serves one connection: HTTP/1.x, or h2c when it opens with the HTTP/2 preface. A
/// listener's connections come here, and so does a tunnel's (whatever its client had sent
/// before is in `io`, to be read first).
pub async fn serve_connection<H, F, B>(
    io: Rewind,
    peer: SocketAddr,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
    handler: H,
) where
    H: Fn(SocketAddr, Request<ClientBody>) -> F,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
{
    let (io, pre) = io.into_parts();
    if let Some(Handoff::H2(io)) =
        h1::serve(io, pre, peer, &limits, shutdown.clone(), &handler).await
    {
        // Boxed: the HTTP/2 state is large, and most connections never need it.
        Box::pin(h2::serve(io, peer, &limits, shutdown, handler)).await;
    }
}
