//! Serves a router over HTTP/1.1 with the bounds `axum::serve` leaves out: a client must
//! send its request head within [`HEADER_READ_TIMEOUT`] (slowloris), and at most
//! [`MAX_CONNECTIONS`] are open at once. The dashboard and the control plane's admin
//! listener serve with it; [`serve_with`] first turns each connection into another stream
//! (the dashboard's external metrics API: a TLS handshake, within the same time limit).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_CONNECTIONS: usize = 1024;

/// Serves `router` on `listener` until `stop` turns true; connections open then are dropped.
pub async fn serve(listener: TcpListener, router: Router, stop: watch::Receiver<bool>) {
    serve_with(listener, router, stop, |s| async move { Ok(s) }).await;
}

/// As [`serve`], over what `wrap` makes of each connection; a connection `wrap` fails or
/// takes longer than [`HEADER_READ_TIMEOUT`] over is closed.
pub async fn serve_with<W, F, S>(
    listener: TcpListener,
    router: Router,
    mut stop: watch::Receiver<bool>,
    wrap: W,
) where
    W: Fn(TcpStream) -> F,
    F: Future<Output = std::io::Result<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Past the cap the connection is closed unread: these listeners serve a few people
        // and their tools.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, "too many connections; closing one");
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let mut stop = stop.clone();
        let wrapped = wrap(stream);
        tokio::spawn(async move {
            let _slot = slot;
            let stream = match tokio::time::timeout(HEADER_READ_TIMEOUT, wrapped).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "connection refused");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "connection too slow to start");
                    return;
                }
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended");
                },
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }
}
