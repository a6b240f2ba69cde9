//! Gets the proxy's leaf from `weft control` and renews it at 70 % of its life. Each answer
//! brings the trust bundle of the moment too, so anchors rotate with no restart. A failure
//! is retried with jittered backoff and said in the log and in `/ready`; the proxy keeps
//! its last leaf while it is valid.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::pki_types::{CertificateDer, UnixTime};
use tokio::sync::watch;
use tonic::transport::Channel;
use weft_api::{CertifyRequest, IdentityClient};
use weft_identity::{tls, Credentials, KeyUsage, Leaf, TrustBundle, Wanted};
use weft_metrics::IdentityMetrics;

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A leaf is renewed when this share of its life has passed.
const RENEW_AT: f64 = 0.7;

/// How getting a leaf goes, for `/ready` and the admin API.
#[derive(Default)]
pub struct Status {
    last_error: Mutex<Option<String>>,
    /// Counts leaves installed: the proxy moves its peer connections onto each new one.
    renewed: watch::Sender<u64>,
}

impl Status {
    /// Changes each time a new leaf is installed.
    pub fn renewals(&self) -> watch::Receiver<u64> {
        self.renewed.subscribe()
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }
}

pub struct Certifier {
    pub metrics: IdentityMetrics,
    pub credentials: Arc<Credentials>,
    pub bundle: Arc<TrustBundle>,
    pub status: Arc<Status>,
    /// TLS to the control plane, checked against `bundle`.
    pub channel: Channel,
    pub token_file: PathBuf,
}

impl Certifier {
    /// Keeps the proxy certified until the task is aborted.
    pub async fn run(self) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let wait = match self.certify().await {
                Ok(leaf) => {
                    self.status.set(None);
                    self.status.renewed.send_modify(|n| *n += 1);
                    self.metrics.certified.inc();
                    backoff = BACKOFF_MIN;
                    let life = leaf
                        .not_after
                        .duration_since(SystemTime::now())
                        .unwrap_or_default();
                    tracing::info!(
                        identity = %self.credentials.identity(),
                        valid_for = ?life,
                        anchors = self.bundle.anchors().len(),
                        "identity: certified"
                    );
                    // A floor: a skewed clock or a tiny lifetime must not make a hot loop.
                    life.mul_f64(RENEW_AT).max(BACKOFF_MIN)
                }
                Err(why) => {
                    // Jittered: a fleet restarted together does not ask in step.
                    let wait = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    tracing::warn!(
                        identity = %self.credentials.identity(),
                        error = %why,
                        retry_in = ?wait,
                        "identity: could not get a certificate"
                    );
                    self.metrics.certify_failures.inc();
                    self.status.set(Some(why));
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// One request: a signing request for the proxy's key, the token read afresh.
    async fn certify(&self) -> Result<Leaf, String> {
        let token = tokio::fs::read(&self.token_file)
            .await
            .map_err(|e| format!("token file {}: {e}", self.token_file.display()))?;
        let csr = self.credentials.csr().map_err(|e| e.to_string())?;
        let request = CertifyRequest {
            identity: self.credentials.identity().to_string(),
            token: trim(token),
            certificate_signing_request: csr,
        };
        let mut client = IdentityClient::new(self.channel.clone());
        let answer = tokio::time::timeout(CALL_TIMEOUT, client.certify(request))
            .await
            .map_err(|_| format!("the control plane did not answer in {CALL_TIMEOUT:?}"))?
            .map_err(|s| match s.code() {
                tonic::Code::Unavailable | tonic::Code::Unknown => {
                    format!("the control plane is unreachable: {}", s.message())
                }
                _ => format!("the control plane refused: {}", s.message()),
            })?
            .into_inner();
        let chain: Vec<CertificateDer<'static>> =
            answer.chain.into_iter().map(CertificateDer::from).collect();
        let anchors: Vec<CertificateDer<'static>> = answer
            .trust_anchors
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        let not_after = SystemTime::UNIX_EPOCH
            + Duration::from_millis(u64::try_from(answer.valid_until_unix_ms).unwrap_or(0));
        self.check(&chain, &anchors)?;
        // The bundle first: a peer's leaf from a new issuer must verify by the time ours is
        // shown to it.
        self.bundle
            .replace(anchors)
            .map_err(|e| format!("the trust bundle: {e}"))?;
        let leaf = Leaf { chain, not_after };
        self.credentials
            .install(leaf.clone())
            .map_err(|e| format!("the leaf: {e}"))?;
        Ok(leaf)
    }

    /// A leaf is taken only if it names this proxy and verifies against the bundle that
    /// comes with it: one that peers would refuse is no use.
    fn check(
        &self,
        chain: &[CertificateDer<'static>],
        anchors: &[CertificateDer<'static>],
    ) -> Result<(), String> {
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or("the control plane sent no certificate")?;
        let own = self.credentials.identity();
        let next = TrustBundle::new(
            self.bundle.trust_domain().clone(),
            anchors.to_vec(),
            tls::provider().signature_verification_algorithms,
        )
        .map_err(|e| format!("the trust bundle sent: {e}"))?;
        next.verify(
            leaf,
            intermediates,
            UnixTime::now(),
            KeyUsage::client_auth(),
            Wanted::Exactly(own),
        )
        .map(drop)
        .map_err(|why| format!("the leaf sent does not verify ({})", why.as_str()))
    }
}

/// A token file's trailing newline is not part of the token.
fn trim(mut token: Vec<u8>) -> Vec<u8> {
    while token.last().is_some_and(u8::is_ascii_whitespace) {
        token.pop();
    }
    token
}
