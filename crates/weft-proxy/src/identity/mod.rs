//! The proxy's mesh identity: its credentials and the trust bundle, made into the TLS its
//! inbound serves peers with and its outbound dials them with; and, when identity comes
//! from `weft control`, the [`certifier`] that gets and renews its leaf. The dashboard
//! holds its own identity the same way ([`MeshIdentity::workload`]).

pub mod certifier;

use std::sync::Arc;

use weft_api::channel;
use weft_core::config::IdentityConfig;
use weft_http::client::ClientTls;
use weft_http::server::ServerTls;
use weft_identity::material::certificates;
use weft_identity::{
    tls, Credentials, Identity, IdentityError, TrustBundle, TrustDomain, CONTROL_ACCOUNT,
    PROXY_ACCOUNT,
};

use certifier::Status;

/// Why a certifier could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertifierError {
    #[error("{0}")]
    Identity(#[from] IdentityError),
    #[error("the control plane's address: {0}")]
    ControlPlane(String),
}

/// What a proxy with identity holds. Its leaf and the bundle may be replaced while it runs;
/// every new handshake uses what they hold then.
#[derive(Clone)]
pub struct MeshIdentity {
    pub credentials: Arc<Credentials>,
    pub bundle: Arc<TrustBundle>,
    /// Plaintext from peers still taken at the inbound (a mesh moving to TLS).
    pub allow_plaintext: bool,
    /// How getting a leaf from the control plane goes; `None` when the leaf is given (the
    /// demo's in-memory CA).
    pub status: Option<Arc<Status>>,
}

impl MeshIdentity {
    /// A key for this node's identity and the configured anchors; no leaf yet (the
    /// certifier gets it).
    pub fn from_config(config: &IdentityConfig, node: &str) -> Result<Self, IdentityError> {
        Self::new(config, |td| {
            Identity::node_proxy(td, &config.namespace, PROXY_ACCOUNT, node)
        })
    }

    /// A key for the identity of a mesh workload that is not a proxy (the dashboard), and
    /// the configured anchors; no leaf yet.
    pub fn workload(config: &IdentityConfig, account: &str) -> Result<Self, IdentityError> {
        Self::new(config, |td| {
            Identity::workload(td, &config.namespace, account)
        })
    }

    fn new(
        config: &IdentityConfig,
        id: impl FnOnce(&TrustDomain) -> Result<Identity, IdentityError>,
    ) -> Result<Self, IdentityError> {
        let path = config
            .trust_anchors
            .as_ref()
            .ok_or_else(|| IdentityError::BadName("no identity.trust_anchors".into()))?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| IdentityError::BadName(format!("{}: {e}", path.display())))?;
        let anchors = certificates(&text)
            .map_err(|e| IdentityError::BadName(format!("{}: {e}", path.display())))?;
        let td = TrustDomain::new(&config.trust_domain)?;
        let id = id(&td)?;
        let bundle = TrustBundle::new(
            td,
            anchors,
            tls::provider().signature_verification_algorithms,
        )?;
        Ok(Self {
            credentials: Arc::new(Credentials::generate(id, &tls::provider())?),
            bundle: Arc::new(bundle),
            allow_plaintext: config.allow_plaintext,
            status: Some(Arc::new(Status::default())),
        })
    }

    /// The control plane's identity, as this proxy expects it.
    pub fn control(&self, namespace: &str) -> Result<Identity, IdentityError> {
        Identity::workload(self.bundle.trust_domain(), namespace, CONTROL_ACCOUNT)
    }

    /// The certifier that gets and renews this identity's leaf from the control plane at
    /// `control_plane`, proving who asks with `config.token_file`; to be run on a task.
    pub fn certifier(
        &self,
        config: &IdentityConfig,
        control_plane: &str,
        metrics: weft_metrics::IdentityMetrics,
    ) -> Result<certifier::Certifier, CertifierError> {
        // Its own channel, showing no certificate: the token proves who asks, and a leaf that
        // has expired (a long control-plane outage) must not stop the proxy getting a new one.
        let tls = tls::control_certify_config(
            Arc::clone(&self.bundle),
            self.credentials.identity().clone(),
            self.control(&config.namespace)?,
        )?;
        let channel = channel::connect_lazy(
            control_plane,
            Some(channel::Tls {
                config: tls,
                gate: None,
            }),
        )
        .map_err(|e| CertifierError::ControlPlane(e.to_string()))?;
        Ok(certifier::Certifier {
            metrics,
            credentials: Arc::clone(&self.credentials),
            bundle: Arc::clone(&self.bundle),
            status: self.status.clone().unwrap_or_default(),
            channel,
            token_file: config.token_file.clone().unwrap_or_default(),
        })
    }

    /// Why the proxy cannot serve peers now, if it cannot: no leaf yet, or an expired one.
    pub fn not_ready(&self) -> Option<String> {
        if self.credentials.is_ready() {
            return None;
        }
        let why = self
            .status
            .as_ref()
            .and_then(|s| s.last_error())
            .unwrap_or_else(|| "waiting for the control plane".into());
        Some(format!("no valid certificate: {why}"))
    }

    /// Sets the identity gauges from what the proxy holds now.
    pub fn observe(&self, metrics: &weft_metrics::IdentityMetrics) {
        let label = weft_metrics::names::label::IDENTITY.to_string();
        metrics
            .info
            .get_or_create(&vec![(label, self.credentials.identity().to_string())])
            .set(1);
        let secs = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        };
        metrics
            .leaf_expiry
            .set(self.credentials.not_after().map_or(0, secs));
        let anchors = self.bundle.anchors();
        metrics.anchors.set(anchors.len() as i64);
        let soonest = anchors
            .iter()
            .filter_map(weft_identity::material::not_after)
            .min();
        metrics.anchor_expiry.set(soonest.map_or(0, secs));
    }

    pub(crate) fn server(&self) -> Result<ServerTls, IdentityError> {
        Ok(ServerTls {
            config: tls::server_config(Arc::clone(&self.credentials), Arc::clone(&self.bundle))?,
            allow_plaintext: self.allow_plaintext,
            identify: Some(Arc::new(|cert| {
                weft_identity::peer_identity(cert).map(|id| Arc::from(id.as_str()))
            })),
        })
    }

    /// Connections to proxies' inbound listeners as this identity, each proxy checked to
    /// be the one on the node dialled: how the dashboard taps over the mesh.
    pub fn connector(
        &self,
        timeout: std::time::Duration,
    ) -> Result<weft_http::client::Connector, IdentityError> {
        Ok(weft_http::client::Connector {
            timeout,
            origin: None,
            tls: Some(self.client()?),
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
            // One setting for both sides of a migration: take plaintext, and dial a
            // plaintext-only peer in plaintext.
            plaintext_fallback: self.allow_plaintext,
        })
    }
}
