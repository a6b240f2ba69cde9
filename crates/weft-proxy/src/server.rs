//! Accepts connections and serves HTTP/1.x (weft's own [`crate::h1`]) and h2c with prior
//! knowledge ([`crate::h2c`]) on the same port, with the limits that protect the proxy from its
//! clients: header size, header read time. On shutdown it stops accepting, lets in-flight
//! requests finish within the grace period, and closes idle connections.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::watch;
use weft_core::config::HttpConfig;
use weft_metrics::tcp::ListenerMetrics;

use crate::body::{ClientBody, ProxyBody};
use crate::h1::conn::{self, Handoff, Limits};
use crate::h1::io::Socket;
use crate::h2c;

/// Serves `handler(peer, request)` on every connection `listener` accepts until `shutdown` turns true.
pub async fn serve<H, F>(
    listener: TcpListener,
    http: HttpConfig,
    metrics: ListenerMetrics,
    mut shutdown: watch::Receiver<bool>,
    handler: H,
) where
    H: Fn(SocketAddr, Request<ClientBody>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let limits = Limits {
        header_read_timeout: http.header_read_timeout,
        max_header_bytes: http.max_header_bytes,
    };
    // Every connection holds a receiver; the sender sees them all gone when the last ends.
    let (alive, _) = watch::channel(());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        metrics.accepted.inc();
        let io = Socket::new(stream, &metrics);
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        let alive = alive.subscribe();
        tokio::spawn(async move {
            let _alive = alive;
            if let Some(Handoff::H2(io)) =
                conn::serve(io, peer, &limits, shutdown.clone(), &handler).await
            {
                Box::pin(h2c::serve(
                    io,
                    peer,
                    limits.max_header_bytes,
                    shutdown,
                    handler,
                ))
                .await;
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(http.shutdown_grace, alive.closed())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?http.shutdown_grace, "connections still open after the grace period");
    }
}
