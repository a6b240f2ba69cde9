//! Mesh identities as SPIFFE IDs. A node's proxy is named for its node, since every proxy
//! runs under the one ServiceAccount: `spiffe://TRUST_DOMAIN/ns/NS/sa/SA/node/NODE`. The
//! control plane and dashboard have workload identities without the node part.

use std::fmt;

use crate::error::IdentityError;

/// The service account every node's proxy runs as (weft install's DaemonSet), named in
/// every proxy's identity.
pub const PROXY_ACCOUNT: &str = "weft-proxy";
/// The control plane's service account, and so its identity's.
pub const CONTROL_ACCOUNT: &str = "weft-control";
/// The dashboard's service account, and so its identity's: what proxies will let tap.
pub const DASHBOARD_ACCOUNT: &str = "weft-dashboard";
/// The ingress's service account, and so its identity's: no node's proxy, but a client
/// every proxy's inbound takes.
pub const INGRESS_ACCOUNT: &str = "weft-ingress";

/// A SPIFFE trust domain: lower-case DNS-like labels (`cluster.local`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrustDomain(String);

impl TrustDomain {
    pub fn new(name: &str) -> Result<Self, IdentityError> {
        let ok = !name.is_empty()
            && name.len() <= 255
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
        if ok {
            Ok(Self(name.to_string()))
        } else {
            Err(IdentityError::BadName(format!(
                "{name:?} is no trust domain (lower-case letters, digits, '-', '.', '_')"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SPIFFE ID in the mesh's trust domain, as a certificate's URI SAN carries it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity(String);

impl Identity {
    /// The identity of the proxy on `node`, running as `sa` in `ns`.
    pub fn node_proxy(
        td: &TrustDomain,
        ns: &str,
        sa: &str,
        node: &str,
    ) -> Result<Self, IdentityError> {
        Self::parse(&format!("spiffe://{td}/ns/{ns}/sa/{sa}/node/{node}"))
    }

    /// A workload's identity (the control plane, the dashboard).
    pub fn workload(td: &TrustDomain, ns: &str, sa: &str) -> Result<Self, IdentityError> {
        Self::parse(&format!("spiffe://{td}/ns/{ns}/sa/{sa}"))
    }

    /// Checks `uri` is a SPIFFE ID weft issues: a trust domain, then `ns/NS/sa/SA` and an
    /// optional `node/NODE`, each segment non-empty and of path-safe characters.
    pub fn parse(uri: &str) -> Result<Self, IdentityError> {
        let bad = || IdentityError::BadName(format!("{uri:?} is no weft SPIFFE ID"));
        let rest = uri.strip_prefix("spiffe://").ok_or_else(bad)?;
        let (td, path) = rest.split_once('/').ok_or_else(bad)?;
        TrustDomain::new(td).map_err(|_| bad())?;
        let segments: Vec<&str> = path.split('/').collect();
        let shape = matches!(
            segments.as_slice(),
            ["ns", _, "sa", _] | ["ns", _, "sa", _, "node", _]
        );
        let safe = segments.iter().all(|s| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        });
        if shape && safe && uri.len() <= 2048 {
            Ok(Self(uri.to_string()))
        } else {
            Err(bad())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn trust_domain(&self) -> &str {
        let rest = &self.0["spiffe://".len()..];
        rest.split_once('/').map_or(rest, |(td, _)| td)
    }

    /// The node a proxy's identity names; `None` for a workload's.
    pub fn node(&self) -> Option<&str> {
        // Parsed: `ns/NS/sa/SA/node/NODE`, so a namespace called `node` is no node.
        let path = self.0["spiffe://".len()..].split_once('/')?.1;
        match path.split('/').collect::<Vec<_>>().as_slice() {
            ["ns", _, "sa", _, "node", node] => Some(node),
            _ => None,
        }
    }

    /// The identity of the proxy on `node` that runs as this one does (same trust domain,
    /// namespace and service account): whom a proxy expects on another node.
    pub fn on_node(&self, node: &str) -> Result<Self, IdentityError> {
        let workload = match self.node() {
            Some(n) => &self.0[..self.0.len() - "/node/".len() - n.len()],
            None => self.as_str(),
        };
        Self::parse(&format!("{workload}/node/{node}"))
    }

    /// The workload running as `sa` beside this identity (same trust domain and namespace).
    pub fn sibling(&self, sa: &str) -> Result<Self, IdentityError> {
        let path = self.0["spiffe://".len()..]
            .split_once('/')
            .map_or("", |p| p.1);
        let ns = path.split('/').nth(1).unwrap_or_default();
        Self::parse(&format!("spiffe://{}/ns/{ns}/sa/{sa}", self.trust_domain()))
    }

    /// Whom this identity dials and takes as proxies: itself on other nodes, for a proxy;
    /// the node proxies of its namespace, for a workload (the ingress).
    pub fn proxies(&self) -> Self {
        match self.node() {
            Some(_) => self.clone(),
            None => self.sibling(PROXY_ACCOUNT).unwrap_or_else(|_| self.clone()),
        }
    }

    /// Whether `peer` is a proxy of the same kind as this one, on some node.
    pub fn is_peer(&self, peer: &Identity) -> bool {
        peer.node()
            .and_then(|n| self.on_node(n).ok())
            .is_some_and(|expected| expected == *peer)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_proxy_identity_names_its_node() {
        let td = TrustDomain::new("cluster.local").unwrap();
        let id = Identity::node_proxy(&td, "weft", "weft-proxy", "node-1").unwrap();
        assert_eq!(
            id.as_str(),
            "spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-1"
        );
        assert_eq!(id.node(), Some("node-1"));
        assert_eq!(id.trust_domain(), "cluster.local");
        let control = Identity::workload(&td, "weft", "weft-control").unwrap();
        assert_eq!(control.node(), None);
        assert_eq!(
            id.on_node("node-2").unwrap().as_str(),
            "spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-2"
        );
        assert!(id.on_node("a/b").is_err());
        // A workload whose namespace is `node` names no node.
        let tricky = Identity::parse("spiffe://cluster.local/ns/node/sa/x").unwrap();
        assert_eq!(tricky.node(), None);
        // Peers: proxies of the same namespace and account; not the control plane, nor a
        // proxy identity in another namespace.
        assert!(id.is_peer(&id.on_node("node-9").unwrap()));
        assert!(!id.is_peer(&control));
        let other = Identity::node_proxy(&td, "tenant", "weft-proxy", "node-1").unwrap();
        assert!(!id.is_peer(&other));
    }

    #[test]
    fn what_is_not_a_weft_identity_is_refused() {
        for bad in [
            "https://cluster.local/ns/a/sa/b",
            "spiffe://Cluster.Local/ns/a/sa/b",
            "spiffe://cluster.local/ns/a/sa/b/extra",
            "spiffe://cluster.local/ns/a/sa/",
            "spiffe://cluster.local/ns/a/sa/b/node/x/y",
            "spiffe://cluster.local/ns/a b/sa/c",
            "spiffe://cluster.local/ns/../sa/c",
            "spiffe://cluster.local/ns/a/sa/c/node/x%2f",
        ] {
            assert!(Identity::parse(bad).is_err(), "{bad}");
        }
    }
}
