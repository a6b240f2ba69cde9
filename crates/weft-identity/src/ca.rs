//! The mesh's certificate authority: a trust anchor (self-signed, the root every proxy
//! trusts) and an issuer it certified, which signs proxies' leaf certificates. It signs a
//! request only for the identity its caller proved, never a CA certificate, and only leaves
//! of a short life.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer};

use crate::error::{CertifyError, IdentityError};
use crate::id::{Identity, TrustDomain};

/// A signing request larger than this is refused unread: a P-256 request is about 300 bytes.
pub const MAX_CSR_BYTES: usize = 16 * 1024;

/// Clocks between nodes differ a little; a leaf is valid from this long before it is made.
const BACKDATE: Duration = Duration::from_secs(60);

/// A CA's certificate and key: the trust anchor, or the issuer under it.
pub struct Authority {
    cert: CertificateDer<'static>,
    signer: Issuer<'static, KeyPair>,
}

impl Authority {
    /// A new self-signed trust anchor for `td`, valid for `lifetime`.
    pub fn new_anchor(td: &TrustDomain, lifetime: Duration) -> Result<Self, IdentityError> {
        let key = KeyPair::generate()?;
        let params = ca_params(&format!("weft trust anchor ({td})"), None, lifetime)?;
        let cert = params.self_signed(&key)?.der().clone();
        Ok(Self {
            cert,
            signer: Issuer::new(params, key),
        })
    }

    /// A new issuer certified by this anchor. It may sign leaves only (path length 0).
    pub fn new_issuer(&self, td: &TrustDomain, lifetime: Duration) -> Result<Self, IdentityError> {
        let key = KeyPair::generate()?;
        let params = ca_params(&format!("weft issuer ({td})"), Some(0), lifetime)?;
        let cert = params.signed_by(&key, &self.signer)?.der().clone();
        Ok(Self {
            cert,
            signer: Issuer::new(params, key),
        })
    }

    /// A new self-signed CA named `name` for TLS outside the mesh (the dashboard's
    /// autoscaling listeners), where holders are named by DNS names and common names, not
    /// SPIFFE IDs. It may sign leaves only (path length 0).
    pub fn new_root(name: &str, lifetime: Duration) -> Result<Self, IdentityError> {
        let key = KeyPair::generate()?;
        let params = ca_params(name, Some(0), lifetime)?;
        let cert = params.self_signed(&key)?.der().clone();
        Ok(Self {
            cert,
            signer: Issuer::new(params, key),
        })
    }

    /// A leaf under this CA for a holder outside the mesh, with a new key: its common name,
    /// its DNS names (none for a client), what it may be used for, valid for `lifetime`.
    pub fn sign_leaf(
        &self,
        common_name: &str,
        dns_names: &[String],
        usage: ExtendedKeyUsagePurpose,
        lifetime: Duration,
    ) -> Result<(CertificateDer<'static>, KeyPair), IdentityError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(dns_names.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let now = SystemTime::now();
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + lifetime).into();
        params.serial_number = Some(serial()?);
        let cert = params.signed_by(&key, &self.signer)?.der().clone();
        Ok((cert, key))
    }

    /// An issuer read back from its certificate and key. Whether they belong together is
    /// checked by signing with them (see [`crate::material::read_ca`]).
    pub fn from_parts(cert: CertificateDer<'static>, key: KeyPair) -> Result<Self, String> {
        let signer = Issuer::from_ca_cert_der(&cert, key)
            .map_err(|e| format!("not a CA certificate: {e}"))?;
        Ok(Self { cert, signer })
    }

    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The private key as PEM, for `weft identity init` to write.
    pub fn key_pem(&self) -> String {
        self.signer.key().serialize_pem()
    }
}

/// Signs proxies' leaves with the issuer; hands out the chain and the trust bundle.
pub struct Ca {
    td: TrustDomain,
    issuer: Authority,
    bundle: Vec<CertificateDer<'static>>,
    leaf_lifetime: Duration,
}

/// A signed leaf: the chain to present (leaf, then issuer) and when it expires.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub not_after: SystemTime,
}

impl Ca {
    /// A CA whose issuer is certified by one of the anchors in `bundle`.
    pub fn new(
        td: TrustDomain,
        issuer: Authority,
        bundle: Vec<CertificateDer<'static>>,
        leaf_lifetime: Duration,
    ) -> Self {
        Self {
            td,
            issuer,
            bundle,
            leaf_lifetime,
        }
    }

    /// A fresh anchor and issuer held only in memory (the demo, tests).
    pub fn ephemeral(td: TrustDomain, leaf_lifetime: Duration) -> Result<Self, IdentityError> {
        let year = Duration::from_secs(365 * 24 * 3600);
        let anchor = Authority::new_anchor(&td, 10 * year)?;
        let issuer = anchor.new_issuer(&td, year)?;
        Ok(Self::new(
            td,
            issuer,
            vec![anchor.cert.clone()],
            leaf_lifetime,
        ))
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.td
    }

    /// The anchors a proxy trusts.
    pub fn bundle(&self) -> &[CertificateDer<'static>] {
        &self.bundle
    }

    /// The issuer's certificate.
    pub fn issuer(&self) -> &CertificateDer<'static> {
        &self.issuer.cert
    }

    /// Signs `csr` for `proven`, the identity its caller proved. The request must name
    /// exactly that identity and must not ask to be a CA; its own subject, key usages and
    /// lifetime are ignored, the CA sets them.
    pub fn certify(&self, csr: &[u8], proven: &Identity) -> Result<Leaf, CertifyError> {
        let now = SystemTime::now();
        let mut end = now + self.leaf_lifetime;
        // No leaf outlives its issuer: peers would refuse it from then on anyway.
        if let Some(issuer_end) = crate::material::not_after(&self.issuer.cert) {
            end = end.min(issuer_end);
        }
        self.certify_between(csr, proven, now - BACKDATE, end)
    }

    /// [`Ca::certify`] with the validity given: for tests of expired and future leaves.
    pub fn certify_between(
        &self,
        csr: &[u8],
        proven: &Identity,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Leaf, CertifyError> {
        if csr.len() > MAX_CSR_BYTES {
            return Err(CertifyError::TooLarge(csr.len()));
        }
        let der = CertificateSigningRequestDer::from(csr);
        let request =
            CertificateSigningRequestParams::from_der(&der).map_err(|_| CertifyError::Malformed)?;
        if matches!(request.params.is_ca, IsCa::Ca(_)) {
            return Err(CertifyError::AsksForCa);
        }
        let asked: Vec<String> = request
            .params
            .subject_alt_names
            .iter()
            .map(|san| match san {
                SanType::URI(uri) => uri.as_str().to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        if asked.len() != 1
            || asked[0] != proven.as_str()
            || proven.trust_domain() != self.td.as_str()
        {
            return Err(CertifyError::WrongIdentity {
                asked,
                proven: proven.to_string(),
            });
        }
        let mut params = leaf_params(proven, not_before, not_after)
            .map_err(|e| CertifyError::Sign(e.to_string()))?;
        params.serial_number = Some(serial().map_err(|e| CertifyError::Sign(e.to_string()))?);
        let cert = params
            .signed_by(&request.public_key, &self.issuer.signer)
            .map_err(|e| CertifyError::Sign(e.to_string()))?;
        Ok(Leaf {
            chain: vec![cert.der().clone(), self.issuer.cert.clone()],
            not_after,
        })
    }
}

fn ca_params(
    name: &str,
    path_len: Option<u8>,
    lifetime: Duration,
) -> Result<CertificateParams, IdentityError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + lifetime).into();
    params.serial_number = Some(serial()?);
    Ok(params)
}

/// What every leaf says: its identity as the only name, usable as client and server.
fn leaf_params(
    id: &Identity,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertificateParams, IdentityError> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![san(id)?];
    params.distinguished_name = DistinguishedName::new();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    Ok(params)
}

/// An identity as a certificate names it.
pub(crate) fn san(id: &Identity) -> Result<SanType, IdentityError> {
    let uri = id
        .as_str()
        .to_string()
        .try_into()
        .map_err(|_| IdentityError::BadName(format!("{id} is not ASCII")))?;
    Ok(SanType::URI(uri))
}

fn serial() -> Result<SerialNumber, IdentityError> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| IdentityError::Random)?;
    // Positive, as DER integers for serials must be.
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}
