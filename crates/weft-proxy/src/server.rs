//! Accepts connections and serves HTTP/1.x (weft's own [`crate::h1`]) and h2c with prior
//! knowledge (hyper) on the same port, with the limits that protect the proxy from its
//! clients: header size, header read time. On shutdown it stops accepting, lets in-flight
//! requests finish within the grace period, and closes idle connections.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use weft_core::config::HttpConfig;
use weft_metrics::tcp::ListenerMetrics;

use crate::body::{ClientBody, ProxyBody};
use crate::h1::conn::{self, Handoff, Limits};
use crate::h1::io::{Rewind, Socket};

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
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .initial_stream_window_size(crate::client::h2::STREAM_WINDOW)
        .initial_connection_window_size(crate::client::h2::CONNECTION_WINDOW)
        .max_header_list_size(u32::try_from(http.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Duration::from_secs(20));
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
        let h2 = h2.clone();
        tokio::spawn(async move {
            let _alive = alive;
            if let Some(Handoff::H2(io)) =
                conn::serve(io, peer, &limits, shutdown.clone(), &handler).await
            {
                Box::pin(serve_h2(h2, io, peer, shutdown, handler)).await;
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

/// An h2c connection, ended with GOAWAY when the proxy drains.
async fn serve_h2<H, F>(
    builder: http2::Builder<TokioExecutor>,
    io: Rewind,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    handler: H,
) where
    H: Fn(SocketAddr, Request<ClientBody>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        // Boxed: hyper spawns a task per stream around this future, and moves it whole a few
        // times on the way; a pointer is cheaper to move than the handler's kilobytes.
        let fut = Box::pin(handler(peer, req.map(ClientBody::H2)));
        async move { Ok::<_, Infallible>(fut.await) }
    });
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let draining = async {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = draining => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "h2 connection ended with an error");
    }
}
