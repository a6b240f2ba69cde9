//! weft's mesh identities: every proxy has a SPIFFE identity naming its node, a key that
//! never leaves its memory and a short-lived leaf certificate signed by the mesh's CA; peers
//! authenticate each other with mutual TLS 1.3 against the mesh's trust anchors.
#![forbid(unsafe_code)]

pub mod autoscaling;
pub mod ca;
pub mod callers;
pub mod credentials;
pub mod edge;
pub mod error;
pub mod id;
pub mod material;
pub mod tls;
pub mod verify;

pub use ca::{Authority, Ca, Leaf};
pub use credentials::Credentials;
pub use error::{CertifyError, IdentityError};
pub use id::{
    Identity, TrustDomain, CONTROL_ACCOUNT, DASHBOARD_ACCOUNT, INGRESS_ACCOUNT, PROXY_ACCOUNT,
};
pub use verify::{peer_identity, Refusal, TrustBundle, Wanted};
/// How a certificate is to be used, for [`TrustBundle::verify`].
pub use webpki::KeyUsage;

/// A random bearer token: 32 bytes from the system's source, as hex.
pub fn random_token() -> Result<String, IdentityError> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| IdentityError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
