//! How an extension API server knows the API server's aggregator: Kubernetes publishes the
//! CA that signs the aggregator's client certificate, and the names it may carry, in the
//! ConfigMap `kube-system/extension-apiserver-authentication` (the Role
//! `extension-apiserver-authentication-reader` reads it). The dashboard's external metrics
//! API takes only callers that certificate proves.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

pub const NAMESPACE: &str = "kube-system";
pub const CONFIGMAP: &str = "extension-apiserver-authentication";
const CA_KEY: &str = "requestheader-client-ca-file";
const NAMES_KEY: &str = "requestheader-allowed-names";

/// The aggregator's CA (PEM) and the common names its certificates may have (any, empty).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHeader {
    pub client_ca: String,
    pub allowed_names: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtensionAuthError {
    #[error("reading configmap {NAMESPACE}/{CONFIGMAP}: {0}")]
    Read(String),
    #[error("configmap {NAMESPACE}/{CONFIGMAP} has no {CA_KEY}: the API server runs without an aggregator CA (--requestheader-client-ca-file)")]
    NoCa,
    #[error("configmap {NAMESPACE}/{CONFIGMAP}: {NAMES_KEY} is not a JSON list of names: {0}")]
    Names(String),
}

/// Reads the aggregator's CA and names as the cluster publishes them now.
pub async fn request_header(client: kube::Client) -> Result<RequestHeader, ExtensionAuthError> {
    let cm = Api::<ConfigMap>::namespaced(client, NAMESPACE)
        .get(CONFIGMAP)
        .await
        .map_err(|e| ExtensionAuthError::Read(e.to_string()))?;
    let data = cm.data.unwrap_or_default();
    let client_ca = data
        .get(CA_KEY)
        .filter(|c| !c.trim().is_empty())
        .ok_or(ExtensionAuthError::NoCa)?
        .clone();
    let allowed_names = match data.get(NAMES_KEY).map(|n| n.trim()) {
        None | Some("") => Vec::new(),
        Some(text) => {
            serde_json::from_str(text).map_err(|e| ExtensionAuthError::Names(e.to_string()))?
        }
    };
    Ok(RequestHeader {
        client_ca,
        allowed_names,
    })
}
