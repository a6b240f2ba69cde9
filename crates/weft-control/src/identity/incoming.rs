//! The control plane's gRPC listener over TLS ([`weft_api::tls_incoming`]): the peer's
//! verified mesh identity, if it gave a certificate, travels with the connection into every
//! request's extensions.

use std::sync::Arc;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;
use weft_api::tls_incoming::{self, TlsConn};
use weft_identity::{peer_identity, Identity};

/// Who is on the other end of a connection: `None` when it gave no certificate.
#[derive(Clone, Debug)]
pub struct Peer {
    pub identity: Option<Identity>,
}

/// The connections `listener` accepts whose handshake under `config` succeeds.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> ReceiverStream<std::io::Result<TlsConn<Peer>>> {
    tls_incoming::incoming(listener, config, |session| Peer {
        identity: session
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(peer_identity),
    })
}
