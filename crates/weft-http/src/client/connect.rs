//! Opens connections upstream with a timeout. A connector to peer proxies carries the
//! mesh's TLS client configuration and wraps each connection in mutual TLS; one to
//! instances opens plain TCP. The pools above see a stream either way.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::Error;

/// A TLS handshake that failed: the request never left, so to the caller a connection that
/// failed.
fn handshake_failed(endpoint: SocketAddr, e: &io::Error) -> Error {
    Error::ConnectFailed {
        endpoint,
        cause: format!("TLS handshake: {e}"),
    }
}

/// TLS toward peer proxies: one configuration per protocol it offers by ALPN.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// For the shared HTTP/2 connection (ALPN `h2`).
    pub h2: Arc<rustls::ClientConfig>,
    /// For upgrades and tunnels (ALPN `http/1.1`).
    pub http1: Arc<rustls::ClientConfig>,
    /// While a mesh moves to TLS: a peer that answers the handshake in anything but TLS
    /// (a proxy from before identities) is dialled again in plaintext. A peer that speaks
    /// TLS and fails the check is never let off.
    pub plaintext_fallback: bool,
}

/// What a connection will speak, which picks its ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaks {
    H2,
    Http1,
}

#[derive(Clone, Debug)]
pub struct Connector {
    pub timeout: Duration,
    /// Present on the connector to peer proxies when the mesh has identities.
    pub tls: Option<ClientTls>,
    /// Present on the connector of a pool to one host outside the mesh that is reached in
    /// TLS though its callers speak plain HTTP (egress).
    pub origin: Option<OriginTls>,
}

/// TLS this proxy starts toward a host outside the mesh: the host's name, sent and checked
/// against its certificate, and the roots it is checked with.
#[derive(Clone, Debug)]
pub struct OriginTls {
    pub config: Arc<rustls::ClientConfig>,
    pub name: ServerName<'static>,
}

/// An upstream connection: plain, or mutual TLS to a peer.
pub enum Conn {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connector {
    pub fn plain(timeout: Duration) -> Self {
        Self {
            timeout,
            tls: None,
            origin: None,
        }
    }

    /// TLS to a host outside the mesh on a connection [`Connector::connect`] made; the
    /// handshake shares the connect timeout.
    pub async fn origin_tls(
        &self,
        origin: &OriginTls,
        endpoint: SocketAddr,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, Error> {
        let handshake =
            TlsConnector::from(Arc::clone(&origin.config)).connect(origin.name.clone(), stream);
        match tokio::time::timeout(self.timeout, handshake).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(handshake_failed(endpoint, &e)),
            Err(_) => Err(self.timed_out(endpoint)),
        }
    }

    /// A TCP connection, never wrapped (pooled HTTP/1.1 to instances).
    pub async fn connect(&self, endpoint: SocketAddr) -> Result<TcpStream, Error> {
        let stream = match tokio::time::timeout(self.timeout, TcpStream::connect(endpoint)).await {
            Err(_) => {
                return Err(Error::ConnectTimeout {
                    endpoint,
                    timeout: self.timeout,
                })
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(Error::ConnectRefused { endpoint })
            }
            Ok(Err(e)) => {
                return Err(Error::ConnectFailed {
                    endpoint,
                    cause: e.to_string(),
                })
            }
            Ok(Ok(s)) => s,
        };
        // Small requests and responses must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// A connection that speaks `speaks`, in mutual TLS when this connector has it. `name`
    /// is the peer's node when discovery says it: sent as the server name, and the peer's
    /// certificate must name that node. The handshake shares the connect timeout.
    pub async fn open(
        &self,
        endpoint: SocketAddr,
        speaks: Speaks,
        name: Option<&str>,
    ) -> Result<Conn, Error> {
        let stream = self.connect(endpoint).await?;
        let Some(tls) = &self.tls else {
            return Ok(Conn::Tcp(stream));
        };
        let config = match speaks {
            Speaks::H2 => Arc::clone(&tls.h2),
            Speaks::Http1 => Arc::clone(&tls.http1),
        };
        // Mesh certificates name identities, not hosts: the verifier reads a DNS name as the
        // node the peer's identity must name; an address asks only for a mesh identity. A
        // node name that is no DNS name cannot be checked, so it is not dialled.
        let name = match name {
            None => ServerName::IpAddress(endpoint.ip().into()),
            Some(n) => match ServerName::try_from(n.to_string()) {
                Ok(dns @ ServerName::DnsName(_)) => dns,
                _ => {
                    return Err(Error::ConnectFailed {
                        endpoint,
                        cause: format!(
                            "node name {n:?} is no DNS name: its proxy's identity cannot be checked"
                        ),
                    })
                }
            },
        };
        let handshake = TlsConnector::from(config).connect(name, stream);
        match tokio::time::timeout(self.timeout, handshake).await {
            Ok(Ok(s)) => Ok(Conn::Tls(Box::new(s))),
            Ok(Err(e)) if tls.plaintext_fallback && speaks_no_tls(&e) => {
                tracing::warn!(%endpoint, error = %e, "peer does not speak TLS; dialling it in plaintext (migration setting)");
                Ok(Conn::Tcp(self.connect(endpoint).await?))
            }
            // The request never left: to the caller, a connection that failed.
            Ok(Err(e)) => Err(handshake_failed(endpoint, &e)),
            Err(_) => Err(self.timed_out(endpoint)),
        }
    }

    fn timed_out(&self, endpoint: SocketAddr) -> Error {
        Error::ConnectTimeout {
            endpoint,
            timeout: self.timeout,
        }
    }
}

/// Whether a failed handshake means the peer answered in something other than TLS (an
/// HTTP error, or a close), as a proxy from before identities does.
fn speaks_no_tls(e: &io::Error) -> bool {
    match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidMessage(_)) => true,
        Some(_) => false,
        None => matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
        ),
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Tcp(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
