//! The CA the control plane signs with, read from its folder and read again whenever a file
//! there changes: a rotation is done by rewriting the files (a Secret's update does), and
//! every proxy takes the new bundle and issuer at its next renewal. A folder that does not
//! read or check keeps the last good CA. The control plane's own leaf comes from the same CA
//! and is renewed at 70 % of its life or when the issuer changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use weft_identity::material::{self, MaterialError};
use weft_identity::{tls, Ca, Credentials, Identity, IdentityError, TrustBundle, TrustDomain};

/// How often the folder is looked at. Rotations are rare; a few seconds is prompt enough.
const POLL: Duration = Duration::from_secs(2);

pub struct Signer {
    dir: PathBuf,
    td: TrustDomain,
    leaf_lifetime: Duration,
    ca: ArcSwap<Ca>,
    /// What the files looked like when last read, to notice a change.
    seen: Mutex<Stamp>,
    own: Arc<Credentials>,
    /// What the control plane checks proxies' certificates against: the CA's anchors.
    bundle: Arc<TrustBundle>,
}

/// Per file: modification time, length, inode and change time, so a copy that keeps the
/// time and length (`cp -p`) or a symlink swap is seen too.
type Stamp = Vec<Option<(SystemTime, u64, u64, i64)>>;

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error(transparent)]
    Material(#[from] MaterialError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("the control plane's own leaf: {0}")]
    Own(String),
}

impl Signer {
    /// Reads the CA in `dir` and signs the control plane's own leaf (`own`) with it.
    pub fn load(
        dir: &Path,
        td: TrustDomain,
        leaf_lifetime: Duration,
        own: Identity,
    ) -> Result<Arc<Self>, SignerError> {
        let seen = stamp(dir);
        let ca = material::read_ca(dir, &td, leaf_lifetime)?;
        let bundle = TrustBundle::new(
            td.clone(),
            ca.bundle().to_vec(),
            tls::provider().signature_verification_algorithms,
        )?;
        let own = Arc::new(Credentials::generate(own, &tls::provider())?);
        let signer = Arc::new(Self {
            dir: dir.to_path_buf(),
            td,
            leaf_lifetime,
            ca: ArcSwap::from_pointee(ca),
            seen: Mutex::new(seen),
            own,
            bundle: Arc::new(bundle),
        });
        signer.certify_own().map_err(SignerError::Own)?;
        Ok(signer)
    }

    pub fn ca(&self) -> Arc<Ca> {
        self.ca.load_full()
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.td
    }

    pub fn credentials(&self) -> Arc<Credentials> {
        Arc::clone(&self.own)
    }

    pub fn bundle(&self) -> Arc<TrustBundle> {
        Arc::clone(&self.bundle)
    }

    /// Each certificate the control plane holds and when it expires: every anchor, the
    /// issuer and its own leaf.
    pub fn expiries(&self) -> Vec<(&'static str, SystemTime)> {
        let ca = self.ca();
        let mut out: Vec<_> = ca
            .bundle()
            .iter()
            .filter_map(material::not_after)
            .map(|t| ("anchor", t))
            .collect();
        out.extend(material::not_after(ca.issuer()).map(|t| ("issuer", t)));
        out.extend(self.own.not_after().map(|t| ("control", t)));
        out
    }

    fn certify_own(&self) -> Result<(), String> {
        let csr = self.own.csr().map_err(|e| e.to_string())?;
        let leaf = self
            .ca()
            .certify(&csr, self.own.identity())
            .map_err(|e| e.to_string())?;
        self.own.install(leaf).map_err(|e| e.to_string())
    }

    /// Reads the folder again when it changed. `Ok(true)` when a new CA was taken.
    pub fn reload(&self) -> Result<bool, MaterialError> {
        let now = stamp(&self.dir);
        if *self.seen.lock().unwrap_or_else(|e| e.into_inner()) == now {
            return Ok(false);
        }
        // Not marked seen until it reads and checks: a folder caught mid-update, or
        // refused for a passing reason (an issuer not valid yet), is read again.
        let ca = material::read_ca(&self.dir, &self.td, self.leaf_lifetime)?;
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = now;
        let old = self.ca();
        if ca.bundle() == old.bundle() && ca.issuer() == old.issuer() {
            return Ok(false);
        }
        tracing::info!(
            anchors = ca.bundle().len(),
            issuer_changed = ca.issuer() != old.issuer(),
            "identity: new CA material taken; proxies get it at their next renewal"
        );
        // Proxies' leaves from the old issuer stay valid only while the bundle holds its
        // anchor: that is the rotation's order to keep, not this code's to check.
        if let Err(e) = self.bundle.replace(ca.bundle().to_vec()) {
            tracing::error!(error = %e, "identity: the new trust bundle was not taken");
        }
        self.ca.store(Arc::new(ca));
        if let Err(e) = self.certify_own() {
            tracing::error!(error = %e, "identity: could not sign the control plane's own leaf");
        }
        Ok(true)
    }

    /// Follows the folder and renews the control plane's own leaf, until dropped.
    pub async fn run(self: Arc<Self>) {
        // A bad folder is said once per change, not every poll.
        let mut said: Option<String> = None;
        loop {
            tokio::time::sleep(POLL).await;
            match self.reload() {
                Ok(_) => said = None,
                Err(e) => {
                    let text = e.to_string();
                    if said.as_ref() != Some(&text) {
                        tracing::error!(error = %text, "identity: CA material not taken; keeping the last good one");
                        said = Some(text);
                    }
                }
            }
            let due = self.own.not_after().is_none_or(|end| {
                let left = end.duration_since(SystemTime::now()).unwrap_or_default();
                left < self.leaf_lifetime.mul_f64(0.3)
            });
            if due {
                if let Err(e) = self.certify_own() {
                    tracing::error!(error = %e, "identity: could not renew the control plane's own leaf");
                }
            }
        }
    }
}

/// Each file's modification time and length, followed through symlinks as a mounted
/// Secret's are.
fn stamp(dir: &Path) -> Stamp {
    [
        material::ANCHORS_FILE,
        material::ISSUER_FILE,
        material::ISSUER_KEY_FILE,
    ]
    .iter()
    .map(|f| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(dir.join(f)).ok()?;
        Some((
            m.modified().ok()?,
            m.len(),
            m.ino(),
            m.ctime_nsec() + m.ctime() * 1_000_000_000,
        ))
    })
    .collect()
}
