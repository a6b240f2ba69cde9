//! weft's mesh identities: every proxy has a SPIFFE identity naming its node, a key that
//! never leaves its memory and a short-lived leaf certificate signed by the mesh's CA; peers
//! authenticate each other with mutual TLS 1.3 against the mesh's trust anchors.
#![forbid(unsafe_code)]

pub mod ca;
pub mod credentials;
pub mod error;
pub mod id;
pub mod tls;
pub mod verify;

pub use ca::{Authority, Ca, Leaf};
pub use credentials::Credentials;
pub use error::{CertifyError, IdentityError};
pub use id::{Identity, TrustDomain};
pub use verify::{peer_identity, Refusal, TrustBundle, Wanted};
