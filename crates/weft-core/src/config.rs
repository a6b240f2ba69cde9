//! The proxy's configuration: a TOML file, every value with a default, every error naming
//! the file and line. Flags and environment variables override it in the binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration;
use crate::name::NameRules;
use crate::policy::{check_max_durations, Policies, Policy, PolicyOverrides};
use crate::ports;
use crate::source::SourceError;

mod edges;
mod tap;
mod tracing;
pub use edges::{
    ContextConfig, EgressConfig, EgressHost, IngressConfig, IngressHost, MAX_EGRESS_HOSTS,
    SYSTEM_ROOTS,
};
pub use tap::TapConfig;
pub use tracing::TracingConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(#[from] SourceError),
    #[error("{}: {cause}", file.display())]
    Invalid { file: PathBuf, cause: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// This node's name, used in logs and the `node` metric label.
    pub node: String,
    pub outbound: ListenerConfig,
    pub inbound: InboundConfig,
    pub admin: ListenerConfig,
    pub discovery: DiscoveryConfig,
    pub names: NamesConfig,
    pub http: HttpConfig,
    pub identity: IdentityConfig,
    pub context: ContextConfig,
    /// Traffic from outside the cluster, routed to mesh services (off unless `listen` is set).
    pub ingress: IngressConfig,
    /// Hosts outside the mesh apps may call through the proxy (none unless listed).
    pub egress: EgressConfig,
    /// Spans of the requests the proxy carries, to an OTLP collector (off unless set).
    pub tracing: TracingConfig,
    /// What live views of requests may show, and to how many at once.
    pub tap: TapConfig,
    /// Resilience defaults for every service (reloadable).
    pub resilience: PolicyOverrides,
    /// Per-service resilience, over the defaults (reloadable).
    pub services: std::collections::BTreeMap<String, PolicyOverrides>,
    /// The file this config came from, watched for resilience changes.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboundConfig {
    pub listen: SocketAddr,
    /// How peers reach this listener; discovery's `node` field of local endpoints must equal
    /// it. Defaults to `listen`.
    pub advertise: Option<SocketAddr>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// A TOML file of services and endpoints, watched for changes.
    pub file: Option<PathBuf>,
    /// `weft control`'s Destination API (`host:port`); used instead of `file` when set.
    pub control_plane: Option<String>,
}

/// The proxy's mesh identity, got from `weft control`. Off unless `trust_anchors` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// The mesh's trust anchors (PEM), against which the control plane is checked until its
    /// first answer brings the current bundle.
    pub trust_anchors: Option<PathBuf>,
    /// The token proving this node to the control plane, read again at each renewal (a
    /// projected ServiceAccount token is refreshed by the kubelet).
    pub token_file: Option<PathBuf>,
    pub trust_domain: String,
    /// The namespace weft runs in: a proxy's identity is
    /// `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/weft-proxy/node/NODE`.
    pub namespace: String,
    /// While a mesh moves to TLS: plaintext from peers still taken at the inbound, and a
    /// peer that does not speak TLS (a proxy from before identities) dialled in plaintext.
    pub allow_plaintext: bool,
    /// The account this proxy is certified as when it is no node's proxy: `weft-ingress`
    /// (which `weft ingress` sets). Unset: the node's proxy.
    pub account: Option<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            trust_anchors: None,
            token_file: None,
            trust_domain: "cluster.local".into(),
            namespace: "weft".into(),
            allow_plaintext: false,
            account: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamesConfig {
    /// Domain suffixes stripped from an authority to find the service name.
    pub suffixes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// A client that has not sent a full request head by then is disconnected.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// Idle upstream connections are closed after this long.
    #[serde(with = "duration")]
    pub pool_idle_timeout: Duration,
    /// A client's HTTP/2 connection with no stream open this long is closed (GOAWAY). Longer
    /// than `pool_idle_timeout`, so a peer proxy's pool lets its connections go first.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Nothing moving on an HTTP/1.1 request this long ends it: a response the client leaves
    /// unread, a body it stops sending, a bodiless request nothing answers (`504`). An
    /// HTTP/2 client that stops reading stops answering PINGs, and is cut off within 30 s.
    #[serde(with = "duration")]
    pub stream_idle_timeout: Duration,
    /// Most idle HTTP/1.1 connections kept per endpoint.
    pub pool_max_idle: usize,
    /// How long a draining proxy waits for in-flight requests.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// Client connections open at once per listener (outbound, inbound); more are answered
    /// `503` with `weft-error: overloaded` and closed.
    pub max_connections: usize,
    /// Requests in flight at once per listener (waiting for their answer); more are
    /// answered `503` with `weft-error: overloaded` at once.
    pub max_requests_in_flight: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            node: "local".into(),
            outbound: ListenerConfig {
                listen: ports::any(ports::OUTBOUND),
            },
            inbound: InboundConfig::default(),
            admin: ListenerConfig {
                listen: ports::loopback(ports::ADMIN),
            },
            discovery: DiscoveryConfig::default(),
            names: NamesConfig::default(),
            http: HttpConfig::default(),
            identity: IdentityConfig::default(),
            context: ContextConfig::default(),
            ingress: IngressConfig::default(),
            egress: EgressConfig::default(),
            tracing: TracingConfig::default(),
            tap: TapConfig::default(),
            resilience: PolicyOverrides::default(),
            services: Default::default(),
            source: None,
        }
    }
}

impl Default for InboundConfig {
    fn default() -> Self {
        Self {
            listen: ports::any(ports::INBOUND),
            advertise: None,
        }
    }
}

impl Default for NamesConfig {
    fn default() -> Self {
        Self {
            suffixes: NameRules::kubernetes_suffixes("default", "cluster.local"),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            pool_idle_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
            stream_idle_timeout: Duration::from_secs(300),
            pool_max_idle: 256,
            shutdown_grace: Duration::from_secs(30),
            // Sized for a node within the DaemonSet's 256 MiB: a connection costs a few KiB
            // at rest, a request in flight a few more.
            max_connections: 8192,
            max_requests_in_flight: 4096,
        }
    }
}

impl ProxyConfig {
    /// Reads a config file; a relative discovery path is taken from the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// A config file's text, read from `path` (which names it in errors, and whose folder
    /// relative paths are taken from), parsed and validated.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut config: Self =
            toml::from_str(text).map_err(|e| SourceError::from_toml(path, text, &e))?;
        // Relative paths are the config file's neighbours, wherever the proxy was started.
        let dir = path.parent().unwrap_or(Path::new("."));
        let ingress = &mut config.ingress;
        let files = [
            &mut config.discovery.file,
            &mut ingress.tls_cert,
            &mut ingress.tls_key,
        ];
        let cas = config.egress.hosts.iter_mut().map(|h| &mut h.tls_ca);
        for file in files.into_iter().chain(cas).flatten() {
            if file.is_relative() {
                *file = dir.join(&*file);
            }
        }
        if let Some(log) = &mut ingress.access_log {
            if log.is_relative() && log.as_os_str() != "-" {
                *log = dir.join(&*log);
            }
        }
        config.source = Some(path.to_path_buf());
        config.validate(path)?;
        Ok(config)
    }

    pub fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |cause: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            cause,
        };
        // Below hyper's floor the limit would be raised silently; say so instead.
        if self.http.max_header_bytes < 8192 {
            return Err(invalid(format!(
                "http.max_header_bytes = {} is below the minimum of 8192",
                self.http.max_header_bytes
            )));
        }
        check_max_durations(&[
            ("http.connect_timeout", self.http.connect_timeout),
            ("http.header_read_timeout", self.http.header_read_timeout),
            ("http.pool_idle_timeout", self.http.pool_idle_timeout),
            ("http.idle_timeout", self.http.idle_timeout),
            ("http.stream_idle_timeout", self.http.stream_idle_timeout),
            ("http.shutdown_grace", self.http.shutdown_grace),
        ])
        .map_err(invalid)?;
        if self.http.max_connections == 0 || self.http.max_requests_in_flight == 0 {
            return Err(invalid(
                "http.max_connections and http.max_requests_in_flight must be above zero".into(),
            ));
        }
        if self.http.idle_timeout.is_zero() || self.http.stream_idle_timeout.is_zero() {
            return Err(invalid(
                "http.idle_timeout and http.stream_idle_timeout must be above zero".into(),
            ));
        }
        if self.http.connect_timeout.is_zero() {
            return Err(invalid("http.connect_timeout must be above zero".into()));
        }
        if !(1..=255).contains(&self.context.max_hops) {
            return Err(invalid(format!(
                "context.max_hops = {} is not between 1 and 255",
                self.context.max_hops
            )));
        }
        // An identity, or every name under one: `…/weft-proxy*` would also take
        // `…/weft-proxy-evil`.
        let loose = |p: &&String| {
            let stem = p.strip_suffix("/*").unwrap_or(p);
            !p.starts_with("spiffe://") || stem.contains('*') || stem.len() <= "spiffe://".len()
        };
        if let Some(p) = self.context.override_peers.iter().find(loose) {
            return Err(invalid(format!(
                "context.override_peers: {p:?} is not a mesh identity (spiffe://…), or one ending in /* for every name under it"
            )));
        }
        self.ingress.check().map_err(&invalid)?;
        self.egress.check().map_err(&invalid)?;
        self.tracing.check().map_err(&invalid)?;
        self.tap.check().map_err(&invalid)?;
        if self.node.is_empty() {
            return Err(invalid("node must not be empty".into()));
        }
        if self.identity.trust_anchors.is_some() {
            if self.identity.token_file.is_none() {
                return Err(invalid(
                    "identity.trust_anchors is set but not identity.token_file: the token proves this node to the control plane".into(),
                ));
            }
            if self.discovery.control_plane.is_none() {
                return Err(invalid(
                    "identity.trust_anchors is set but not discovery.control_plane: identities come from weft control".into(),
                ));
            }
        }
        self.policies().map_err(invalid)?;
        Ok(())
    }

    /// Resolves the resilience sections: defaults, then `[resilience]`, then each service's.
    pub fn policies(&self) -> Result<Policies, String> {
        let default = self.resilience.apply(&Policy::default());
        default.validate().map_err(|e| format!("resilience.{e}"))?;
        let mut services = std::collections::BTreeMap::new();
        for (name, o) in &self.services {
            let p = o.apply(&default);
            p.validate().map_err(|e| format!("services.{name}.{e}"))?;
            services.insert(name.to_ascii_lowercase(), p);
        }
        Ok(Policies { default, services })
    }

    /// The address peers use for this proxy's inbound listener.
    pub fn inbound_advertise(&self) -> SocketAddr {
        self.inbound.advertise.unwrap_or(self.inbound.listen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_names_file_and_line() {
        let dir = std::env::temp_dir().join(format!("weft-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("proxy.toml");
        std::fs::write(&path, "node = \"a\"\n[http]\nconnect_timeout = \"soon\"\n").unwrap();
        let err = ProxyConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("proxy.toml:3:"), "{err}");
        assert!(err.contains("invalid duration"), "{err}");
    }

    #[test]
    fn override_peers_name_identities_or_everything_under_one() {
        let check = |peers: &[&str]| {
            let mut c = ProxyConfig::default();
            c.context.override_peers = peers.iter().map(|p| p.to_string()).collect();
            c.validate(Path::new("proxy.toml")).is_ok()
        };
        assert!(check(&[
            "spiffe://cluster.local/ns/weft/sa/weft-proxy/node/*"
        ]));
        assert!(check(&[
            "spiffe://cluster.local/ns/weft/sa/weft-proxy/node/a"
        ]));
        for loose in [
            "*",
            "",
            "spiffe://cluster.local/ns/weft/sa/weft-proxy*",
            "spiffe://*/x",
            "node-a",
        ] {
            assert!(!check(&[loose]), "{loose}");
        }
        let mut c = ProxyConfig::default();
        c.context.override_peers = vec!["spiffe://td/ns/weft/sa/weft-proxy/node/*".into()];
        assert!(c.context.trusts("spiffe://td/ns/weft/sa/weft-proxy/node/b"));
        assert!(!c
            .context
            .trusts("spiffe://td/ns/weft/sa/weft-proxy-evil/node/b"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = toml::from_str::<ProxyConfig>("[outbound]\nlisten = \"1.2.3.4:1\"\nlisen = 2\n");
        assert!(err.is_err());
    }
}
