//! A proxy's own credentials: a key made in memory that never leaves it, and the leaf
//! certificate currently signed for it. A renewed leaf replaces the old one for every new
//! handshake at once; connections made before keep theirs.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use rcgen::KeyPair;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::SignatureScheme;

use crate::ca::{san, Leaf};
use crate::error::IdentityError;
use crate::id::Identity;

pub struct Credentials {
    id: Identity,
    key: KeyPair,
    signing: Arc<dyn SigningKey>,
    current: ArcSwapOption<Current>,
}

struct Current {
    certified: Arc<CertifiedKey>,
    not_after: SystemTime,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("id", &self.id)
            .field("not_after", &self.not_after())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// A new key for `id`; no certificate yet.
    pub fn generate(id: Identity, provider: &CryptoProvider) -> Result<Self, IdentityError> {
        let key = KeyPair::generate()?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = provider.key_provider.load_private_key(der)?;
        Ok(Self {
            id,
            key,
            signing,
            current: ArcSwapOption::empty(),
        })
    }

    pub fn identity(&self) -> &Identity {
        &self.id
    }

    /// A signing request for this identity and key (DER).
    pub fn csr(&self) -> Result<Vec<u8>, IdentityError> {
        // Only the name: the CA decides the rest.
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![san(&self.id)?];
        params.distinguished_name = rcgen::DistinguishedName::new();
        Ok(params.serialize_request(&self.key)?.der().to_vec())
    }

    /// Presents `leaf` from the next handshake on. Refused if it is not for this key.
    pub fn install(&self, leaf: Leaf) -> Result<(), IdentityError> {
        let certified = CertifiedKey::new(leaf.chain, Arc::clone(&self.signing));
        certified.keys_match()?;
        self.current.store(Some(Arc::new(Current {
            certified: Arc::new(certified),
            not_after: leaf.not_after,
        })));
        Ok(())
    }

    /// When the current leaf expires; `None` before the first.
    pub fn not_after(&self) -> Option<SystemTime> {
        self.current.load().as_ref().map(|c| c.not_after)
    }

    /// Whether there is a leaf that has not expired.
    pub fn is_ready(&self) -> bool {
        self.not_after().is_some_and(|t| t > SystemTime::now())
    }

    fn certified(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .load()
            .as_ref()
            .map(|c| Arc::clone(&c.certified))
    }
}

impl ResolvesServerCert for Credentials {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.certified()
    }
}

impl ResolvesClientCert for Credentials {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.certified()
    }

    fn has_certs(&self) -> bool {
        self.current.load().is_some()
    }
}
