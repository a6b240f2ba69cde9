//! The listener's mutual TLS, for the inbound that peer proxies reach: a connection whose
//! first byte opens a TLS handshake record is handshaken; anything else is plaintext, taken
//! only while a migration allows it and otherwise answered `403` and closed. Peeking one
//! byte tells the two apart without consuming it or stalling on a client that waits for
//! the server to speak first (none of HTTP's do).

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::socket::{Stats, Stream};

/// A TLS record's first byte when it carries a handshake (a ClientHello here).
const HANDSHAKE_RECORD: u8 = 0x16;

const REFUSAL: &[u8] = b"HTTP/1.1 403 Forbidden\r\nweft-error: mutual TLS required\r\n\
content-type: text/plain; charset=utf-8\r\ncontent-length: 33\r\nconnection: close\r\n\r\n\
this port takes only mesh peers\r\n";

/// How a listener takes TLS.
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    /// Plaintext still served (while a mesh moves to TLS); otherwise refused.
    pub allow_plaintext: bool,
    /// Names the peer from its verified certificate; each request on the connection then
    /// carries the name as a [`PeerIdentity`] extension.
    pub identify: Option<Identify>,
}

pub type Identify = Arc<dyn Fn(&CertificateDer<'_>) -> Option<Arc<str>> + Send + Sync>;

/// Who sent a request over mutual TLS: the peer's identity, as [`ServerTls::identify`]
/// named it. Absent on plaintext connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity(pub Arc<str>);

/// The identity of the peer on a TLS connection, if the listener names peers.
pub(crate) fn peer_identity(stream: &Stream, tls: &ServerTls) -> Option<PeerIdentity> {
    let identify = tls.identify.as_ref()?;
    let Stream::Tls(s) = stream else {
        return None;
    };
    let cert = s.get_ref().1.peer_certificates()?.first()?;
    identify(cert).map(PeerIdentity)
}

/// The connection to serve, or `None` when it was refused or went quiet within `timeout`.
pub(crate) async fn accept(
    mut stream: TcpStream,
    peer: SocketAddr,
    tls: &ServerTls,
    timeout: Duration,
    stats: &Stats,
) -> Option<Stream> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return None,
    }
    if first[0] != HANDSHAKE_RECORD {
        if tls.allow_plaintext {
            return Some(Stream::Tcp(stream));
        }
        tracing::warn!(%peer, "refused a plaintext connection: mutual TLS required");
        stats.tls_refused("plaintext");
        let _ = stream.write_vectored(&[IoSlice::new(REFUSAL)]).await;
        let _ = stream.shutdown().await;
        // What the client sent is read and dropped a moment: closing with it unread would
        // reset the connection and could destroy the answer before the client reads it.
        let drain = async {
            let mut sink = [0u8; 4096];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        };
        let _ = tokio::time::timeout(Duration::from_millis(200), drain).await;
        return None;
    }
    let handshake = TlsAcceptor::from(Arc::clone(&tls.config)).accept(stream);
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(s)) => {
            stats.tls_accepted();
            Some(Stream::Tls(Box::new(s)))
        }
        Ok(Err(e)) => {
            let why = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
            match why {
                // The verifier has logged why, and counted it.
                Some(rustls::Error::InvalidCertificate(_)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake refused");
                }
                Some(rustls::Error::NoCertificatesPresented) => {
                    tracing::warn!(%peer, "refused a TLS peer without a certificate");
                    stats.tls_refused("no_certificate");
                }
                _ => {
                    tracing::warn!(%peer, error = %e, "TLS handshake refused");
                    stats.tls_refused("handshake");
                }
            }
            None
        }
        Err(_) => {
            tracing::debug!(%peer, ?timeout, "TLS handshake did not finish in time");
            None
        }
    }
}
