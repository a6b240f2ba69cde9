//! A gRPC channel to `weft control`: plaintext, or TLS with a rustls configuration the
//! caller builds (a proxy's presents its leaf and checks the control plane's identity
//! against the mesh's anchors). Connections are made lazily and again after a failure, so
//! a proxy that has no certificate yet, or whose control plane is away, simply retries.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(Debug, thiserror::Error)]
#[error("control plane address {addr:?}: {message}")]
pub struct BadAddress {
    addr: String,
    message: String,
}

/// Says whether a connection may be made now, and why not. A proxy's Destination channel
/// waits for its first leaf: a connection made without it would be refused every stream.
pub type Gate = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// TLS for a channel: the configuration, and what must hold before each connection.
pub struct Tls {
    pub config: Arc<ClientConfig>,
    pub gate: Option<Gate>,
}

/// A channel to `addr` (`host:port`, or a URI); over TLS when `tls` is given.
pub fn connect_lazy(addr: &str, tls: Option<Tls>) -> Result<Channel, BadAddress> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let uri = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("{scheme}://{addr}")
    };
    let bad = |message: String| BadAddress {
        addr: addr.to_string(),
        message,
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    if endpoint.uri().host().is_none() {
        return Err(bad("no host".into()));
    }
    Ok(match tls {
        None => endpoint.connect_lazy(),
        Some(Tls { config, gate }) => {
            endpoint.connect_with_connector_lazy(TlsConnector { config, gate })
        }
    })
}

/// TCP, then a TLS handshake under `config`, for each connection the channel makes.
#[derive(Clone)]
struct TlsConnector {
    config: Arc<ClientConfig>,
    gate: Option<Gate>,
}

type Connecting =
    Pin<Box<dyn Future<Output = std::io::Result<TokioIo<TlsStream<TcpStream>>>> + Send>>;

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = Arc::clone(&self.config);
        let gate = self.gate.as_ref().map(|g| g());
        Box::pin(async move {
            if let Some(Err(why)) = gate {
                return Err(std::io::Error::other(why));
            }
            let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
            let host = uri.host().ok_or_else(|| invalid("no host"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(host.to_string())
                .map_err(|_| invalid("the host is no server name"))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}
