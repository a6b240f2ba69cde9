//! A gRPC server's listener over TLS, for tonic's `serve_with_incoming*`: each connection's
//! handshake runs on its own task (a slow client holds up no one), and what the caller
//! makes of the peer's verified certificate travels with the connection into every
//! request's extensions. The control plane and the dashboard's KEDA scaler serve this way.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::{ServerConfig, ServerConnection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// A handshake not done by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection whose handshake succeeded, with `P`: what was learnt of the peer.
pub struct TlsConn<P> {
    io: TlsStream<TcpStream>,
    peer: P,
}

impl<P: Clone + Send + Sync + 'static> Connected for TlsConn<P> {
    type ConnectInfo = P;

    fn connect_info(&self) -> P {
        self.peer.clone()
    }
}

impl<P: Unpin> AsyncRead for TlsConn<P> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<P: Unpin> AsyncWrite for TlsConn<P> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The connections `listener` accepts whose handshake under `config` succeeds, each with
/// `peer` of its TLS session. A connection that fails its handshake (no client certificate
/// where one is required, one from another CA, plaintext) is closed and never seen by the
/// server; it is logged at debug, as any stranger's knock is.
pub fn incoming<P, F>(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    peer: F,
) -> ReceiverStream<std::io::Result<TlsConn<P>>>
where
    P: fmt::Debug + Send + 'static,
    F: Fn(&ServerConnection) -> P + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::channel(32);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let peer = Arc::new(peer);
    tokio::spawn(async move {
        loop {
            let (tcp, from) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors, say: wait rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx, peer) = (acceptor.clone(), tx.clone(), Arc::clone(&peer));
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(io)) => {
                        let peer = peer(io.get_ref().1);
                        tracing::debug!(%from, ?peer, "TLS connection accepted");
                        let _ = tx.send(Ok(TlsConn { io, peer })).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%from, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%from, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
