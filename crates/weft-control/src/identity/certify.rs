//! The Identity API's `Certify`: a proxy sends the identity it wants, a token proving its
//! node and a signing request; it gets a leaf for exactly the identity the token proves,
//! and the trust bundle of the moment. The dashboard asks the same way, with a token of its
//! own account.

use std::sync::Arc;
use std::time::SystemTime;

use tonic::{Request, Response, Status};
use weft_api::{CertifyRequest, CertifyResponse};
use weft_identity::ca::MAX_CSR_BYTES;
use weft_identity::Identity;

use super::signer::Signer;
use super::tokens::{AuthError, Authenticate, Subject};
use super::{DASHBOARD_ACCOUNT, INGRESS_ACCOUNT, PROXY_ACCOUNT};
use crate::metrics::Metrics;

/// The largest request taken: a CSR, a token and an identity, with room to spare.
pub const MAX_REQUEST_BYTES: usize = 2 * MAX_CSR_BYTES;

pub struct CertifyService {
    pub signer: Arc<Signer>,
    pub authenticate: Authenticate,
    /// Where weft runs: proxies' identities are `…/ns/NAMESPACE/sa/weft-proxy/node/NODE`,
    /// the dashboard's `…/ns/NAMESPACE/sa/weft-dashboard`.
    pub namespace: String,
    pub metrics: Arc<Metrics>,
}

#[tonic::async_trait]
impl weft_api::Identity for CertifyService {
    async fn certify(
        &self,
        request: Request<CertifyRequest>,
    ) -> Result<Response<CertifyResponse>, Status> {
        let result = self.sign(request.into_inner()).await;
        let outcome = match &result {
            Ok(_) => "signed",
            Err(s) if s.code() == tonic::Code::Unauthenticated => "unauthenticated",
            Err(s) if s.code() == tonic::Code::PermissionDenied => "wrong_identity",
            Err(s) if s.code() == tonic::Code::InvalidArgument => "bad_request",
            Err(_) => "error",
        };
        self.metrics
            .certify
            .get_or_create(&vec![("result", outcome)])
            .inc();
        result.map(Response::new)
    }
}

impl CertifyService {
    async fn sign(&self, req: CertifyRequest) -> Result<CertifyResponse, Status> {
        let asked = Identity::parse(&req.identity)
            .map_err(|e| Status::invalid_argument(format!("identity: {e}")))?;
        let subject = match self.authenticate.subject(&req.token).await {
            Ok(subject) => subject,
            Err(AuthError::Refused(why)) => {
                tracing::warn!(identity = %asked, %why, "identity: refused a certify request");
                return Err(Status::unauthenticated(why));
            }
            Err(AuthError::Broken(why)) => {
                tracing::error!(%why, "identity: cannot check tokens");
                return Err(Status::unavailable(
                    "the control plane cannot check tokens now",
                ));
            }
        };
        let ca = self.signer.ca();
        let td = ca.trust_domain();
        let proven = match &subject {
            Subject::Proxy { node } => {
                Identity::node_proxy(td, &self.namespace, PROXY_ACCOUNT, node)
                    .map_err(|e| Status::invalid_argument(format!("node {node:?}: {e}")))?
            }
            Subject::Dashboard => Identity::workload(td, &self.namespace, DASHBOARD_ACCOUNT)
                .map_err(|e| Status::internal(e.to_string()))?,
            Subject::Ingress => Identity::workload(td, &self.namespace, INGRESS_ACCOUNT)
                .map_err(|e| Status::internal(e.to_string()))?,
        };
        if asked != proven {
            tracing::warn!(%asked, %proven, "identity: a token asked for another identity");
            return Err(Status::permission_denied(format!(
                "the token proves {proven}, not {asked}"
            )));
        }
        let leaf = ca
            .certify(&req.certificate_signing_request, &proven)
            .map_err(|e| {
                tracing::warn!(identity = %proven, error = %e, "identity: refused a signing request");
                Status::invalid_argument(e.to_string())
            })?;
        let until = leaf
            .not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        tracing::debug!(identity = %proven, "identity: signed a leaf");
        Ok(CertifyResponse {
            chain: leaf.chain.iter().map(|c| c.to_vec()).collect(),
            trust_anchors: ca.bundle().iter().map(|c| c.to_vec()).collect(),
            valid_until_unix_ms: i64::try_from(until.as_millis()).unwrap_or(i64::MAX),
        })
    }
}
