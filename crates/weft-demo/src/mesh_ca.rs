//! The demo's own certificate authority, in memory for the demo's life: it certifies each
//! node's proxy for its node, and the dashboard for its account, as the control plane does
//! on Kubernetes, so the demo's hop between proxies is mutual TLS with nothing to set up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use weft_dashboard::identity::{IdentityView, OwnIdentity};
use weft_dashboard::tap::{Dial, Dialing, Io};
use weft_http::client::{Connector, Speaks};
use weft_identity::{tls, Ca, Credentials, Identity, IdentityError, TrustBundle, TrustDomain};
use weft_proxy::MeshIdentity;

/// The namespace the demo's identities name, as `weft install`'s default.
const NAMESPACE: &str = "weft";

/// The demo's trust domain, as a cluster's default.
pub const TRUST_DOMAIN: &str = "cluster.local";
/// Proxies' leaves live a day, as on a cluster, and are renewed at 70 % of their life.
const LEAF_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const RENEW_AFTER: Duration = Duration::from_secs(24 * 3600 * 7 / 10);

pub struct MeshCa {
    ca: Ca,
}

impl MeshCa {
    pub fn new() -> Result<Self, IdentityError> {
        let td = TrustDomain::new(TRUST_DOMAIN)?;
        Ok(Self {
            ca: Ca::ephemeral(td, LEAF_LIFETIME)?,
        })
    }

    /// Signs each proxy a new leaf at 70 % of its last one's life, until `stop`; a demo left
    /// running for days keeps working. Each new handshake presents the new leaf.
    pub async fn renew(
        self: Arc<Self>,
        proxies: Vec<Arc<Credentials>>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RENEW_AFTER) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            for creds in &proxies {
                let renewed = creds
                    .csr()
                    .map_err(|e| e.to_string())
                    .and_then(|csr| {
                        self.ca
                            .certify(&csr, creds.identity())
                            .map_err(|e| e.to_string())
                    })
                    .and_then(|leaf| creds.install(leaf).map_err(|e| e.to_string()));
                if let Err(e) = renewed {
                    tracing::warn!(identity = %creds.identity(), error = %e, "could not renew a leaf");
                }
            }
        }
    }

    /// A proxy's identity for `node`: a key of its own and a leaf signed for it.
    pub fn certify(&self, node: &str) -> Result<MeshIdentity, IdentityError> {
        let td = self.ca.trust_domain();
        self.certify_as(Identity::node_proxy(
            td,
            NAMESPACE,
            weft_identity::PROXY_ACCOUNT,
            node,
        )?)
    }

    /// Every node proxy's identity, as a `context.override_peers` pattern.
    pub fn proxy_pattern(&self) -> String {
        format!(
            "spiffe://{}/ns/{NAMESPACE}/sa/{}/node/*",
            self.ca.trust_domain().as_str(),
            weft_identity::PROXY_ACCOUNT
        )
    }

    /// The dashboard's identity, as the control plane would sign it.
    pub fn certify_dashboard(&self) -> Result<MeshIdentity, IdentityError> {
        let td = self.ca.trust_domain();
        self.certify_as(Identity::workload(
            td,
            NAMESPACE,
            weft_identity::DASHBOARD_ACCOUNT,
        )?)
    }

    fn certify_as(&self, id: Identity) -> Result<MeshIdentity, IdentityError> {
        let td = self.ca.trust_domain();
        let credentials = Credentials::generate(id, &tls::provider())?;
        let leaf = self
            .ca
            .certify(&credentials.csr()?, credentials.identity())
            .map_err(|e| IdentityError::BadName(e.to_string()))?;
        credentials.install(leaf)?;
        let bundle = TrustBundle::new(
            td.clone(),
            self.ca.bundle().to_vec(),
            tls::provider().signature_verification_algorithms,
        )?;
        Ok(MeshIdentity {
            credentials: Arc::new(credentials),
            bundle: Arc::new(bundle),
            allow_plaintext: false,
            status: None,
        })
    }
}

/// The dashboard's view of an identity it holds: the demo's, signed here, or the one
/// `weft dashboard` gets from the control plane.
pub fn shown(identity: MeshIdentity) -> OwnIdentity {
    let dial = identity.connector(TAP_CONNECT_TIMEOUT).ok().map(|c| {
        let dial: Arc<dyn Dial> = Arc::new(TapDial(Arc::new(c)));
        dial
    });
    let own = OwnIdentity::new(Arc::new(move |metrics| {
        identity.observe(metrics);
        IdentityView {
            identity: identity.credentials.identity().to_string(),
            valid_until: identity.credentials.not_after(),
            error: identity.not_ready(),
        }
    }));
    match dial {
        Some(d) => own.with_dial(d),
        None => own,
    }
}

const TAP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The dashboard's connections to proxies' inbound listeners, as its identity.
struct TapDial(Arc<Connector>);

impl Dial for TapDial {
    fn dial(&self, inbound: SocketAddr, node: String) -> Dialing {
        let connector = Arc::clone(&self.0);
        Box::pin(async move {
            let conn = connector
                .open(inbound, Speaks::Http1, Some(&node))
                .await
                .map_err(std::io::Error::other)?;
            let io: Box<dyn Io> = Box::new(conn);
            Ok(io)
        })
    }
}
