//! Who may have which identity: a proxy proves its node with a bootstrap token from a
//! file (outside Kubernetes) or, on Kubernetes, with a projected ServiceAccount token that
//! TokenReview checks and whose answer names the pod's node.
//!
//! A bootstrap tokens file has one node per line, its name then its token:
//! ```text
//! # node    token
//! node-1    6f2c0d4e9a…
//! ```
//! It is read at each request, so a node can be added or a token revoked without a restart.

use std::path::{Path, PathBuf};

/// A token shorter than this is refused when the file is read: it could be guessed.
const MIN_TOKEN_LEN: usize = 16;
/// Larger tokens are refused unread: a projected ServiceAccount token is about 1 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

#[derive(Clone, Debug)]
pub enum Authenticate {
    /// Bootstrap tokens from this file.
    Bootstrap(PathBuf),
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
    /// The node whose proxy `token` proves.
    pub async fn node(&self, token: &[u8]) -> Result<String, AuthError> {
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
                for (node, known) in &table {
                    if equal(known.as_bytes(), token) {
                        found = Some(node.clone());
                    }
                }
                found.ok_or_else(|| AuthError::Refused("unknown bootstrap token".into()))
            }
        }
    }
}

/// The file's (node, token) pairs; an error names the file and line.
pub fn parse(path: &Path, text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
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
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "{}: the token for {node} is shorter than {MIN_TOKEN_LEN} characters",
                at()
            ));
        }
        if out.iter().any(|(n, _)| n == node) {
            return Err(format!("{}: {node} is listed twice", at()));
        }
        out.push((node.to_string(), token.to_string()));
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
    }

    #[tokio::test]
    async fn only_a_listed_token_proves_its_node() {
        let dir = std::env::temp_dir().join(format!("weft-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        std::fs::write(
            &path,
            "node-1 0123456789abcdef0123\nnode-2 fedcba9876543210fedc\n",
        )
        .unwrap();
        let auth = Authenticate::Bootstrap(path);
        assert_eq!(auth.node(b"fedcba9876543210fedc").await.unwrap(), "node-2");
        assert!(matches!(
            auth.node(b"fedcba9876543210fedd").await,
            Err(AuthError::Refused(_))
        ));
        assert!(matches!(auth.node(b"").await, Err(AuthError::Refused(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
