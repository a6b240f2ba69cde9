//! The proxy's mesh identity: its credentials and the trust bundle, made into the TLS its
//! inbound serves peers with and its outbound dials them with.

use std::sync::Arc;

use weft_http::client::ClientTls;
use weft_http::server::ServerTls;
use weft_identity::{tls, Credentials, IdentityError, TrustBundle};

/// What a proxy with identity holds. Its leaf and the bundle may be replaced while it runs;
/// every new handshake uses what they hold then.
#[derive(Clone)]
pub struct MeshIdentity {
    pub credentials: Arc<Credentials>,
    pub bundle: Arc<TrustBundle>,
    /// Plaintext from peers still taken at the inbound (a mesh moving to TLS).
    pub allow_plaintext: bool,
}

impl MeshIdentity {
    pub(crate) fn server(&self) -> Result<ServerTls, IdentityError> {
        Ok(ServerTls {
            config: tls::server_config(Arc::clone(&self.credentials), Arc::clone(&self.bundle))?,
            allow_plaintext: self.allow_plaintext,
        })
    }

    pub(crate) fn client(&self) -> Result<ClientTls, IdentityError> {
        let config = |alpn| {
            tls::client_config(
                Arc::clone(&self.credentials),
                Arc::clone(&self.bundle),
                alpn,
            )
        };
        Ok(ClientTls {
            h2: config(tls::ALPN_H2)?,
            http1: config(tls::ALPN_HTTP1)?,
        })
    }
}
