//! The CA's material as files in one folder: `anchors.pem` (every trust anchor, several
//! during a rotation), `issuer.pem` and `issuer-key.pem`. `weft identity init` writes a new
//! set; the control plane reads one and reads it again when it changes, keeping the last
//! good set while a new one is incomplete or wrong.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::KeyPair;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use webpki::KeyUsage;

use crate::ca::{Authority, Ca};
use crate::credentials::Credentials;
use crate::id::{Identity, TrustDomain};
use crate::verify::{TrustBundle, Wanted};
use crate::{tls, IdentityError};

pub const ANCHORS_FILE: &str = "anchors.pem";
pub const ISSUER_FILE: &str = "issuer.pem";
pub const ISSUER_KEY_FILE: &str = "issuer-key.pem";

/// Anchors and issuer as `weft identity init` makes them: ten years and one.
pub const ANCHOR_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
pub const ISSUER_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a folder's material was not taken, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct MaterialError {
    pub path: PathBuf,
    pub message: String,
}

/// A trust bundle and the issuer the control plane signs with.
pub struct Material {
    pub anchors: Vec<CertificateDer<'static>>,
    pub issuer: Authority,
}

impl Material {
    /// A new anchor and an issuer under it. The anchor's key is not kept: a rotation makes
    /// a new pair, and nothing can sign another issuer under the old anchor.
    pub fn generate(td: &TrustDomain) -> Result<Self, IdentityError> {
        let anchor = Authority::new_anchor(td, ANCHOR_LIFETIME)?;
        let issuer = anchor.new_issuer(td, ISSUER_LIFETIME)?;
        Ok(Self {
            anchors: vec![anchor.cert().clone()],
            issuer,
        })
    }

    /// Writes the three files into `dir` (made if missing); the key readable by its owner
    /// only.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(dir)?;
        let anchors: String = self.anchors.iter().map(to_pem).collect();
        std::fs::write(dir.join(ANCHORS_FILE), anchors)?;
        std::fs::write(dir.join(ISSUER_FILE), to_pem(self.issuer.cert()))?;
        let mut key = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join(ISSUER_KEY_FILE))?;
        std::io::Write::write_all(&mut key, self.issuer.key_pem().as_bytes())
    }
}

/// Reads `dir`'s files into a CA signing leaves of `leaf_lifetime`, checked as a peer would
/// check what it signs: a probe leaf must verify against the anchors, so an issuer that is
/// no CA, is not under an anchor, has expired or whose key is not its own is refused.
pub fn read_ca(dir: &Path, td: &TrustDomain, leaf_lifetime: Duration) -> Result<Ca, MaterialError> {
    let read = |name: &str| {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).map_err(|e| MaterialError {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok::<_, MaterialError>((path, text))
    };
    let bad = |path: &Path, message: String| MaterialError {
        path: path.to_path_buf(),
        message,
    };
    let (anchors_path, text) = read(ANCHORS_FILE)?;
    let anchors = certificates(&text).map_err(|m| bad(&anchors_path, m))?;
    let bundle = TrustBundle::new(
        td.clone(),
        anchors.clone(),
        tls::provider().signature_verification_algorithms,
    )
    .map_err(|e| bad(&anchors_path, e.to_string()))?;
    let (issuer_path, cert_text) = read(ISSUER_FILE)?;
    let mut certs = certificates(&cert_text).map_err(|m| bad(&issuer_path, m))?;
    if certs.len() != 1 {
        return Err(bad(
            &issuer_path,
            "must hold exactly one certificate".into(),
        ));
    }
    let (key_path, key_text) = read(ISSUER_KEY_FILE)?;
    let key = KeyPair::from_pem(&key_text)
        .map_err(|e| bad(&key_path, format!("not a private key in PEM: {e}")))?;
    let issuer = Authority::from_parts(certs.remove(0), key).map_err(|m| bad(&issuer_path, m))?;
    let ca = Ca::new(td.clone(), issuer, anchors, leaf_lifetime);
    probe(&ca, &bundle).map_err(|m| bad(&issuer_path, m))?;
    Ok(ca)
}

fn probe(ca: &Ca, bundle: &TrustBundle) -> Result<(), String> {
    let td = ca.trust_domain();
    let probe = Identity::workload(td, "weft", "probe").map_err(|e| e.to_string())?;
    let creds =
        Credentials::generate(probe.clone(), &tls::provider()).map_err(|e| e.to_string())?;
    let csr = creds.csr().map_err(|e| e.to_string())?;
    let leaf = ca.certify(&csr, &probe).map_err(|e| e.to_string())?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    bundle
        .check(
            &leaf.chain[0],
            &leaf.chain[1..],
            UnixTime::since_unix_epoch(now),
            KeyUsage::client_auth(),
            Wanted::Exactly(&probe),
        )
        .map(drop)
        .map_err(|why| {
            format!(
                "a leaf this issuer signs does not verify against {ANCHORS_FILE} ({}): is it a CA under one of those anchors, still valid, with its own key?",
                why.as_str()
            )
        })
}

/// Every certificate in a PEM text; at least one.
pub fn certificates(text: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("holds no certificate".into());
    }
    Ok(certs)
}

/// One certificate as PEM.
pub fn to_pem(cert: &CertificateDer<'_>) -> String {
    // LF, as openssl and every other tool writes PEM.
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", cert.to_vec()), config)
}

/// When a certificate expires; `None` when it does not parse.
pub fn not_after(cert: &CertificateDer<'_>) -> Option<SystemTime> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let secs = parsed.validity().not_after.timestamp();
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}
