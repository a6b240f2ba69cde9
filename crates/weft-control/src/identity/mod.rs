//! The mesh's certificate authority, in the control plane: it signs each node proxy's leaf,
//! and the dashboard's, after checking who asks ([`tokens`]), from a CA it reads from files and reads again when
//! they change ([`signer`]), so anchors and issuer rotate with no restart. The control plane
//! serves its gRPC over TLS under an identity of its own ([`incoming`]).

pub mod certify;
pub mod incoming;
pub mod signer;
pub mod tokens;

use std::path::PathBuf;
use std::time::Duration;

pub use weft_identity::{CONTROL_ACCOUNT, DASHBOARD_ACCOUNT, INGRESS_ACCOUNT, PROXY_ACCOUNT};

#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// Holds `anchors.pem`, `issuer.pem` and `issuer-key.pem` (`weft identity init`).
    pub dir: PathBuf,
    pub trust_domain: String,
    /// How long a proxy's leaf lives; it renews at 70 % of that.
    pub leaf_lifetime: Duration,
    /// How proxies prove their node (and the dashboard its account): a bootstrap tokens
    /// file, or (`None`, on Kubernetes) projected ServiceAccount tokens checked with
    /// TokenReview.
    pub bootstrap_tokens: Option<PathBuf>,
}
