//! Accepts connections and serves HTTP/1.x ([`super::h1`]) and h2c with prior knowledge
//! ([`super::h2`]) on the same port. On shutdown it stops accepting, lets in-flight requests
//! finish within the grace period, and closes idle connections.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::h1::{self, Handoff, Limits};
use super::h2;
use super::recv::ClientBody;
use crate::error::BoxError;
use crate::socket::{Socket, Stats};

/// Serves `handler(peer, request)` on every connection `listener` accepts until `shutdown`
/// turns true, then waits up to the grace period for the connections to finish.
pub async fn serve<H, F, B>(
    listener: TcpListener,
    limits: Limits,
    stats: Stats,
    mut shutdown: watch::Receiver<bool>,
    handler: H,
) where
    H: Fn(SocketAddr, Request<ClientBody>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
{
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
        let io = Socket::new(stream, &stats);
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        let alive = alive.subscribe();
        tokio::spawn(async move {
            let _alive = alive;
            if let Some(Handoff::H2(io)) =
                h1::serve(io, peer, &limits, shutdown.clone(), &handler).await
            {
                Box::pin(h2::serve(
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
    if tokio::time::timeout(limits.shutdown_grace, alive.closed())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.shutdown_grace, "connections still open after the grace period");
    }
}
