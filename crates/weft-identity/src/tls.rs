//! rustls configurations for the proxy-to-proxy hop: TLS 1.3 on ring, both sides
//! authenticated, ALPN `h2` for the shared connection and `http/1.1` for upgrades and
//! tunnels.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::version::TLS13;
use rustls::{ClientConfig, ServerConfig};

use crate::credentials::Credentials;
use crate::error::IdentityError;
use crate::id::Identity;
use crate::verify::{ClientVerifier, ServerVerifier, TrustBundle};

pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The one crypto provider weft uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What an inbound serves with: its credentials, and only peers the bundle trusts.
pub fn server_config(
    creds: Arc<Credentials>,
    bundle: Arc<TrustBundle>,
) -> Result<Arc<ServerConfig>, IdentityError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&TLS13])?
        .with_client_cert_verifier(Arc::new(ClientVerifier::new(
            bundle,
            creds.identity().clone(),
        )))
        .with_cert_resolver(creds);
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
    // No resumption: a resumed session would bring back the peer's old chain unchecked —
    // a leaf since expired, or under an anchor since dropped. Peer connections are few and
    // long-lived; each is a full handshake.
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(Arc::new(config))
}

/// What an outbound dials a peer with, speaking `alpn`. The server name it dials names the
/// peer's node when discovery says it (see [`ServerVerifier`]).
pub fn client_config(
    creds: Arc<Credentials>,
    bundle: Arc<TrustBundle>,
    alpn: &[u8],
) -> Result<Arc<ClientConfig>, IdentityError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerVerifier::new(
            bundle,
            creds.identity().clone(),
        )))
        .with_client_cert_resolver(creds);
    config.alpn_protocols = vec![alpn.to_vec()];
    // Every connection shows the leaf of the moment (see `server_config`).
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// What a proxy dials the control plane with: its leaf when it has one, and a check that
/// the server is `control`.
pub fn control_client_config(
    creds: Arc<Credentials>,
    bundle: Arc<TrustBundle>,
    control: Identity,
) -> Result<Arc<ClientConfig>, IdentityError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerVerifier::exactly(
            bundle,
            creds.identity().clone(),
            control,
        )))
        .with_client_cert_resolver(creds);
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    // A resumed session keeps the first one's client authentication: a session begun
    // before the proxy had a leaf would stay anonymous after it has one.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// What a proxy asks the control plane for a leaf with: no client certificate (the token
/// proves who asks), so a proxy whose leaf has expired, or is under an anchor since dropped,
/// can still get a new one.
pub fn control_certify_config(
    bundle: Arc<TrustBundle>,
    own: Identity,
    control: Identity,
) -> Result<Arc<ClientConfig>, IdentityError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerVerifier::exactly(bundle, own, control)))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// What the control plane serves gRPC with: its own leaf; a client certificate optional
/// (a proxy without one may only ask for one), and when given it must be the ingress or a
/// proxy like `proxies`.
pub fn control_server_config(
    creds: Arc<Credentials>,
    bundle: Arc<TrustBundle>,
    proxies: Identity,
) -> Result<Arc<ServerConfig>, IdentityError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&TLS13])?
        .with_client_cert_verifier(Arc::new(ClientVerifier::optional(bundle, proxies)))
        .with_cert_resolver(creds);
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    // Every connection authenticates afresh (see `control_client_config`).
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(Arc::new(config))
}
