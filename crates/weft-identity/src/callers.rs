//! Callers a TLS listener outside the mesh takes by client certificate: one signed by one
//! of a set of CAs and, when names are given, with one of them as its common name. This is
//! how an extension API server (the dashboard's external metrics API) knows that a request
//! comes from the API server's aggregator: Kubernetes publishes the CA and the names as
//! `requestheader-client-ca-file` and `requestheader-allowed-names`. Both can change while
//! serving (the cluster rotates its front-proxy CA): [`Callers::update`] swaps them whole.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::material;
use crate::tls::provider;

struct Current {
    verifier: Arc<dyn ClientCertVerifier>,
    /// Common names allowed; empty: any the CAs signed.
    names: Vec<String>,
}

pub struct Callers {
    current: ArcSwap<Current>,
}

impl fmt::Debug for Callers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callers")
            .field("names", &self.current.load().names)
            .finish_non_exhaustive()
    }
}

impl Callers {
    /// Callers with certificates from the CAs in `ca_pem`, named one of `names` (any, when
    /// empty).
    pub fn new(ca_pem: &str, names: Vec<String>) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(current(ca_pem, names)?),
        }))
    }

    /// Takes new CAs and names from the next handshake on; when `ca_pem` holds no usable
    /// CA, the old ones stay.
    pub fn update(&self, ca_pem: &str, names: Vec<String>) -> Result<(), String> {
        self.current.store(Arc::new(current(ca_pem, names)?));
        Ok(())
    }
}

fn current(ca_pem: &str, names: Vec<String>) -> Result<Current, String> {
    let mut roots = RootCertStore::empty();
    for cert in material::certificates(ca_pem)? {
        roots.add(cert).map_err(|e| format!("a client CA: {e}"))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| format!("the client CAs: {e}"))?;
    Ok(Current { verifier, names })
}

/// The subject's common name of a DER certificate.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

impl ClientCertVerifier for Callers {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The CAs can change under a borrowed list: no hints. Clients (Go's among them) then
        // send the certificate they have.
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let current = self.current.load();
        let verified = current
            .verifier
            .verify_client_cert(end_entity, intermediates, now)?;
        if current.names.is_empty() {
            return Ok(verified);
        }
        match common_name(end_entity) {
            Some(cn) if current.names.contains(&cn) => Ok(verified),
            cn => Err(rustls::Error::General(format!(
                "client certificate named {:?}, not one of the allowed {:?}",
                cn.unwrap_or_default(),
                current.names
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current
            .load()
            .verifier
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current
            .load()
            .verifier
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current.load().verifier.supported_verify_schemes()
    }
}
