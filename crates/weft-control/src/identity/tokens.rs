//! Who may have which identity: a proxy proves its node with a bootstrap token from a
//! file (outside Kubernetes) or, on Kubernetes, with a projected ServiceAccount token that
//! TokenReview checks and whose answer names the pod's node. The dashboard and the ingress
//! prove their accounts the same ways (the ingress's token must be bound to a pod).
//!
//! A bootstrap tokens file has one node per line, its name then its token; the dashboard's
//! and the ingress's lines name their accounts, `sa/weft-dashboard` and `sa/weft-ingress`
//! (no node name has a `/`):
//! ```text
//! # node or account    token
//! node-1               6f2c0d4e9a…
//! sa/weft-dashboard    41d09b77c3…
//! sa/weft-ingress      9b1e77a0c2…
//! ```
//! It is read at each request, so a node can be added or a token revoked without a restart.

use std::path::{Path, PathBuf};

/// A token shorter than this is refused when the file is read: it could be guessed.
const MIN_TOKEN_LEN: usize = 16;
/// Larger tokens are refused unread: a projected ServiceAccount token is about 1 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The audience weft's projected ServiceAccount tokens are made for: a token for the API
/// server, or for anything else, proves nothing here.
pub const AUDIENCE: &str = "weft-identity";
const NODE_NAME: &str = "authentication.kubernetes.io/node-name";
const POD_NAME: &str = "authentication.kubernetes.io/pod-name";
const POD_UID: &str = "authentication.kubernetes.io/pod-uid";

#[derive(Clone)]
pub enum Authenticate {
    /// Bootstrap tokens from this file.
    Bootstrap(PathBuf),
    /// Projected ServiceAccount tokens, checked by TokenReview: the token must be for
    /// weft's audience and the proxies', the dashboard's or the ingress's account in
    /// `namespace`.
    Kubernetes {
        client: kube::Client,
        namespace: String,
    },
}

impl std::fmt::Debug for Authenticate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bootstrap(path) => f.debug_tuple("Bootstrap").field(path).finish(),
            Self::Kubernetes { namespace, .. } => f
                .debug_struct("Kubernetes")
                .field("namespace", namespace)
                .finish_non_exhaustive(),
        }
    }
}

/// Whom a token proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// The proxy on this node.
    Proxy { node: String },
    /// The dashboard, by its account: its identity has no node.
    Dashboard,
    /// The ingress, by its account: no node's proxy, whichever node it runs on.
    Ingress,
}

/// How the ingress is named in a bootstrap tokens file.
pub fn ingress_entry() -> String {
    format!("sa/{}", super::INGRESS_ACCOUNT)
}

/// How the dashboard is named in a bootstrap tokens file.
pub fn dashboard_entry() -> String {
    format!("sa/{}", super::DASHBOARD_ACCOUNT)
}

/// Why a token proved nothing.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The caller's fault: told to it.
    #[error("{0}")]
    Refused(String),
    /// Ours: logged, and the caller told only that we could not check.
    #[error("{0}")]
    Broken(String),
}

impl Authenticate {
    /// Whom `token` proves: a node's proxy, or the dashboard.
    pub async fn subject(&self, token: &[u8]) -> Result<Subject, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Refused("no token".into()));
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Refused(format!(
                "the token is {} bytes, more than the {MAX_TOKEN_BYTES} allowed",
                token.len()
            )));
        }
        match self {
            Self::Bootstrap(path) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| AuthError::Broken(format!("{}: {e}", path.display())))?;
                let table = parse(path, &text).map_err(AuthError::Broken)?;
                // Every entry is compared, so the time taken says nothing of which matched.
                let mut found = None;
                for (subject, known) in &table {
                    if equal(known.as_bytes(), token) {
                        found = Some(subject.clone());
                    }
                }
                found.ok_or_else(|| AuthError::Refused("unknown bootstrap token".into()))
            }
            Self::Kubernetes { client, namespace } => {
                let token = std::str::from_utf8(token)
                    .map_err(|_| AuthError::Refused("the token is not text".into()))?;
                review(client, namespace, token).await
            }
        }
    }
}

/// Asks the API server who `token` is: the dashboard, or the node of the proxy pod it was
/// issued to.
async fn review(client: &kube::Client, namespace: &str, token: &str) -> Result<Subject, AuthError> {
    use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
    let reviews: kube::Api<TokenReview> = kube::Api::all(client.clone());
    let asked = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_string(),
            audiences: Some(vec![AUDIENCE.to_string()]),
        },
        ..Default::default()
    };
    let answer = reviews
        .create(&Default::default(), &asked)
        .await
        .map_err(|e| AuthError::Broken(format!("TokenReview: {e}")))?;
    let status = answer.status.unwrap_or_default();
    if status.authenticated != Some(true) {
        let why = status.error.unwrap_or_else(|| "not authenticated".into());
        return Err(AuthError::Refused(format!("the token was refused: {why}")));
    }
    if !status
        .audiences
        .unwrap_or_default()
        .iter()
        .any(|a| a == AUDIENCE)
    {
        return Err(AuthError::Refused(format!(
            "the token is not for the {AUDIENCE} audience"
        )));
    }
    let user = status.user.unwrap_or_default();
    let account = |name: &str| format!("system:serviceaccount:{namespace}:{name}");
    let username = user.username.unwrap_or_default();
    if username == account(super::DASHBOARD_ACCOUNT) {
        return Ok(Subject::Dashboard);
    }
    let extra = user.extra.unwrap_or_default();
    let one = |key: &str| extra.get(key).and_then(|v| v.first()).cloned();
    if username == account(super::INGRESS_ACCOUNT) {
        // Its leaf is a client every proxy takes: only a token bound to a pod (the
        // kubelet's projected one, dead with the pod) proves it, not one minted loose.
        return match one(POD_NAME) {
            Some(_) => Ok(Subject::Ingress),
            None => Err(AuthError::Refused(
                "the ingress's token is bound to no pod (a projected token is)".into(),
            )),
        };
    }
    let expected = account(super::PROXY_ACCOUNT);
    if username != expected {
        return Err(AuthError::Refused(format!(
            "the token is {username}'s, not {expected}'s, {}'s or {}'s",
            account(super::DASHBOARD_ACCOUNT),
            account(super::INGRESS_ACCOUNT)
        )));
    }
    if let Some(node) = one(NODE_NAME) {
        return Ok(Subject::Proxy { node });
    }
    // Before Kubernetes 1.30 a token names its pod, not its node: the pod says where it runs.
    let Some(pod) = one(POD_NAME) else {
        return Err(AuthError::Refused(
            "the token is bound to no pod (a projected token is)".into(),
        ));
    };
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), namespace);
    let found = pods
        .get_opt(&pod)
        .await
        .map_err(|e| AuthError::Broken(format!("reading pod {namespace}/{pod}: {e}")))?
        .ok_or_else(|| AuthError::Refused(format!("the token's pod {pod} is gone")))?;
    if let Some(uid) = one(POD_UID) {
        if found.metadata.uid.as_deref() != Some(uid.as_str()) {
            return Err(AuthError::Refused(format!(
                "the token's pod {pod} is gone (another has its name)"
            )));
        }
    }
    found
        .spec
        .and_then(|s| s.node_name)
        .map(|node| Subject::Proxy { node })
        .ok_or_else(|| AuthError::Refused(format!("the token's pod {pod} is on no node yet")))
}

/// The file's (subject, token) pairs; an error names the file and line.
pub fn parse(path: &Path, text: &str) -> Result<Vec<(Subject, String)>, String> {
    let mut out: Vec<(Subject, String)> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), n + 1);
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(node), Some(token), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("{}: expected `NODE TOKEN`", at()));
        };
        let subject = if node == dashboard_entry() {
            Subject::Dashboard
        } else if node == ingress_entry() {
            Subject::Ingress
        } else if node.contains('/') {
            return Err(format!(
                "{}: {node} is neither a node name nor {} nor {}",
                at(),
                dashboard_entry(),
                ingress_entry()
            ));
        } else {
            Subject::Proxy {
                node: node.to_string(),
            }
        };
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "{}: the token for {node} is shorter than {MIN_TOKEN_LEN} characters",
                at()
            ));
        }
        if names.contains(&node) {
            return Err(format!("{}: {node} is listed twice", at()));
        }
        names.push(node);
        out.push((subject, token.to_string()));
    }
    Ok(out)
}

/// Compares in time that depends on the lengths only.
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokens_file_error_names_the_file_and_line() {
        let p = Path::new("tokens");
        let good = "# comment\nnode-1 0123456789abcdef0123\n\nnode-2 fedcba9876543210fedc # two\n";
        assert_eq!(parse(p, good).unwrap().len(), 2);
        assert_eq!(
            parse(p, "node-1 0123456789abcdef0123\nnode-2\n").unwrap_err(),
            "tokens:2: expected `NODE TOKEN`"
        );
        assert!(parse(p, "node-1 short")
            .unwrap_err()
            .starts_with("tokens:1: the token"));
        assert!(parse(
            p,
            "node-1 0123456789abcdef0123\nnode-1 0123456789abcdef0124"
        )
        .unwrap_err()
        .contains("listed twice"));
        let dashboard = parse(p, "sa/weft-dashboard 0123456789abcdef0123").unwrap();
        assert_eq!(dashboard[0].0, Subject::Dashboard);
        let ingress = parse(p, "sa/weft-ingress 0123456789abcdef0123").unwrap();
        assert_eq!(ingress[0].0, Subject::Ingress);
        assert_eq!(
            parse(p, "sa/weft-control 0123456789abcdef0123").unwrap_err(),
            "tokens:1: sa/weft-control is neither a node name nor sa/weft-dashboard nor sa/weft-ingress"
        );
    }

    #[tokio::test]
    async fn only_a_listed_token_proves_its_node_or_account() {
        let dir = std::env::temp_dir().join(format!("weft-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        std::fs::write(
            &path,
            "node-1 0123456789abcdef0123\nnode-2 fedcba9876543210fedc\nsa/weft-dashboard abcdefabcdefabcdefab\n",
        )
        .unwrap();
        let auth = Authenticate::Bootstrap(path);
        assert_eq!(
            auth.subject(b"fedcba9876543210fedc").await.unwrap(),
            Subject::Proxy {
                node: "node-2".into()
            }
        );
        assert_eq!(
            auth.subject(b"abcdefabcdefabcdefab").await.unwrap(),
            Subject::Dashboard
        );
        assert!(matches!(
            auth.subject(b"fedcba9876543210fedd").await,
            Err(AuthError::Refused(_))
        ));
        assert!(matches!(
            auth.subject(b"").await,
            Err(AuthError::Refused(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
