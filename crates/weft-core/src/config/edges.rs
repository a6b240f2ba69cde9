//! The config of the mesh's edges: the `weft-ctx-*` headers the proxy enforces
//! (`[context]`), the ingress for outside callers (`[ingress]`), and the hosts outside the
//! mesh apps may call (`[egress]`).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The `weft-ctx-*` headers the proxy enforces: the hop limit, and whose staging overrides
/// it honours.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextConfig {
    /// Proxy hops a request may make (`weft-ctx-hops`); past it, `508` loop detected.
    pub max_hops: u32,
    /// Peers whose `weft-ctx-override` the inbound passes to apps, by mesh identity; a
    /// trailing `*` matches any rest (`spiffe://cluster.local/ns/weft/sa/weft-proxy/node/*`).
    /// Apps on this node (the outbound) are always trusted; anyone else's is dropped.
    pub override_peers: Vec<String>,
}

impl Default for ContextConfig {
    fn default() -> Self {
        Self {
            max_hops: crate::context::DEFAULT_MAX_HOPS,
            override_peers: Vec::new(),
        }
    }
}

impl ContextConfig {
    /// Whether `peer` (a mesh identity) is named in `override_peers`.
    pub fn trusts(&self, peer: &str) -> bool {
        self.override_peers
            .iter()
            .any(|p| match p.strip_suffix('*') {
                Some(prefix) => peer.starts_with(prefix),
                None => p == peer,
            })
    }
}

/// The ingress: a listener for callers outside the mesh, routing by host and then by the
/// same route rules as the mesh's services (`[[ingress.hosts]]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngressConfig {
    pub listen: Option<SocketAddr>,
    /// The certificate chain and key (PEM) TLS is terminated with; plaintext without them.
    /// Both files are read again when they change; a bad pair keeps the last good one.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// One JSON line per request, to this file (appended), or `-` for standard output.
    pub access_log: Option<PathBuf>,
    pub hosts: Vec<IngressHost>,
}

/// Requests for some host names, and the routes that take them to mesh services.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressHost {
    /// Host names as callers send them (`hello.example.com`), or `*` for any other.
    pub names: Vec<String>,
    pub routes: Vec<crate::route::RouteRule>,
}

impl IngressConfig {
    pub(super) fn check(&self) -> Result<(), String> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("ingress.tls_cert and ingress.tls_key go together".into());
        }
        if self.listen.is_some() && self.hosts.is_empty() {
            return Err(
                "ingress.listen is set but no [[ingress.hosts]]: nothing could be routed".into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, host) in self.hosts.iter().enumerate() {
            if host.names.is_empty() {
                return Err(format!("ingress.hosts[{i}] names no host"));
            }
            for name in &host.names {
                let ok = name == "*"
                    || (!name.is_empty()
                        && name.len() <= 253
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b)));
                if !ok {
                    return Err(format!("ingress.hosts[{i}]: {name:?} is not a host name"));
                }
                if !seen.insert(name.to_ascii_lowercase()) {
                    return Err(format!("ingress.hosts: {name:?} is listed twice"));
                }
            }
            crate::route::Routes::new(host.routes.clone())
                .map_err(|e| format!("ingress.hosts[{i}]: {e}"))?;
        }
        Ok(())
    }
}

/// Egress: the hosts outside the mesh that apps may reach through the outbound, resolved by
/// DNS (their TTL honoured). Anything not listed is refused: `403`, `weft-error: egress denied`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressConfig {
    /// The DNS server asked (`host:port`); the first of /etc/resolv.conf by default.
    pub dns_server: Option<SocketAddr>,
    pub hosts: Vec<EgressHost>,
}

/// One host apps may call, and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressHost {
    /// The host name as apps address it (`api.example.com`): exact, never a pattern.
    pub name: String,
    /// Plain HTTP requests for the host go to this port; none are allowed without it (or
    /// `tls`).
    #[serde(default)]
    pub http_port: Option<u16>,
    /// Apps' plain HTTP for the host goes out in TLS (to `http_port`, 443 by default), the
    /// host's certificate checked against `tls_ca`.
    #[serde(default)]
    pub tls: bool,
    /// The roots (PEM) the host's certificate is checked with; the system's by default.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Ports `CONNECT` tunnels (an app's HTTPS) may open to it; none by default.
    #[serde(default)]
    pub connect_ports: Vec<u16>,
    /// Whether the host may resolve to loopback, link-local (cloud metadata), unspecified
    /// or multicast addresses; such answers are dropped otherwise, so a name cannot be
    /// pointed at the node itself.
    #[serde(default)]
    pub allow_internal: bool,
}

/// Where Debian (and most Linux) keeps the system's roots.
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

impl EgressHost {
    /// The port apps' HTTP for the host goes to, if they may send it any.
    pub fn http_port(&self) -> Option<u16> {
        self.http_port.or(self.tls.then_some(443))
    }
}

/// Listed hosts at most: each is a service with its series.
pub const MAX_EGRESS_HOSTS: usize = 256;

impl EgressConfig {
    pub(super) fn check(&self) -> Result<(), String> {
        if self.hosts.len() > MAX_EGRESS_HOSTS {
            return Err(format!("egress.hosts: at most {MAX_EGRESS_HOSTS}"));
        }
        let mut seen = std::collections::HashSet::new();
        for h in &self.hosts {
            let name = &h.name;
            let ok = name.contains('.')
                && name.len() <= 253
                && name.parse::<std::net::IpAddr>().is_err()
                && name.split('.').all(|l| !l.is_empty() && l.len() <= 63)
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
            if !ok {
                return Err(format!(
                    "egress.hosts: {name:?} is not a host name with a domain (an address or a pattern is not taken)"
                ));
            }
            if !seen.insert(name.to_ascii_lowercase()) {
                return Err(format!("egress.hosts: {name:?} is listed twice"));
            }
            if h.http_port == Some(0) || h.connect_ports.contains(&0) || h.connect_ports.len() > 16
            {
                return Err(format!(
                    "egress.hosts {name:?}: ports are 1 to 65535, at most 16 for CONNECT"
                ));
            }
        }
        Ok(())
    }
}
