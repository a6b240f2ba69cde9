//! Listed egress hosts as a discovery source in front of the mesh's own: a listed host is
//! a service whose endpoints are the addresses DNS gives it, asked again when their TTL
//! runs out. `api.example.com` is its plain HTTP (on its `http_port`), and
//! `api.example.com:443` each port `CONNECT` may open; every other name is the mesh
//! source's. A host is first resolved when a request first names it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::sync::watch;
use weft_core::config::{EgressConfig, EgressHost, HttpConfig, SYSTEM_ROOTS};
use weft_core::route::RoutesState;
use weft_core::{Endpoint, EndpointSet, Protocol, Resolution, ServiceName};
use weft_discovery::Discover;
use weft_http::client::{Connector, H1Pool, OriginTls};

use super::dns::{DnsError, Resolver};
use crate::FastMap;

/// Addresses taken from one answer: a host is balanced over a few, not hundreds.
const MAX_ADDRESSES: usize = 16;
/// A TTL shorter than this is asked again no sooner: a zero TTL would be a query per request.
const MIN_REFRESH: Duration = Duration::from_secs(1);
const MAX_REFRESH: Duration = Duration::from_secs(300);
/// After a failed lookup, the next try; the last addresses stay meanwhile.
const RETRY: Duration = Duration::from_secs(5);

/// The egress list as the request's checks read it, and the pools of the hosts reached in
/// TLS.
#[derive(Default)]
pub(crate) struct EgressList {
    hosts: HashMap<String, EgressHost>,
    origins: Arc<FastMap<String, Arc<H1Pool>>>,
}

impl EgressList {
    pub(crate) fn new(config: &EgressConfig, http: &HttpConfig) -> Result<Self, String> {
        let hosts: HashMap<String, EgressHost> = config
            .hosts
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.clone()))
            .collect();
        let mut origins = FastMap::default();
        for (name, host) in hosts.iter().filter(|(_, h)| h.tls) {
            let origin = origin_tls(name, host.tls_ca.as_deref())?;
            let connector = Connector {
                origin: Some(origin),
                ..Connector::plain(http.connect_timeout)
            };
            let pool = H1Pool::new(connector, http.pool_idle_timeout, http.pool_max_idle);
            origins.insert(name.clone(), pool);
        }
        Ok(Self {
            hosts,
            origins: Arc::new(origins),
        })
    }

    /// The listed host `name` names, if any.
    pub(crate) fn host(&self, name: &str) -> Option<&EgressHost> {
        if self.hosts.is_empty() {
            return None;
        }
        self.hosts.get(name)
    }

    /// The pools of the hosts reached in TLS, by service name.
    pub(crate) fn origins(&self) -> Arc<FastMap<String, Arc<H1Pool>>> {
        Arc::clone(&self.origins)
    }
}

/// The TLS a host's pool starts: its name sent and checked against the roots in `ca` (the
/// system's by default), HTTP/1.1 by ALPN.
fn origin_tls(host: &str, ca: Option<&Path>) -> Result<OriginTls, String> {
    let ca = ca.unwrap_or(Path::new(SYSTEM_ROOTS));
    let text = std::fs::read_to_string(ca)
        .map_err(|e| format!("egress host {host}: roots {}: {e}", ca.display()))?;
    let certs = weft_identity::material::certificates(&text)
        .map_err(|e| format!("egress host {host}: roots {}: {e}", ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "egress host {host}: {} holds no usable root",
            ca.display()
        ));
    }
    let mut config = rustls::ClientConfig::builder_with_provider(weft_identity::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![weft_identity::tls::ALPN_HTTP1.to_vec()];
    let name =
        ServerName::try_from(host.to_string()).map_err(|e| format!("egress host {host}: {e}"))?;
    Ok(OriginTls {
        config: Arc::new(config),
        name,
    })
}

pub(crate) struct EgressDiscovery {
    inner: Arc<dyn Discover>,
    resolver: Arc<Resolver>,
    /// Service name → the host and the port its endpoints are on.
    names: HashMap<String, (String, u16)>,
    followed: Mutex<HashMap<String, watch::Receiver<Resolution>>>,
}

impl EgressDiscovery {
    /// `inner` with `config`'s hosts in front; `inner` alone when none are listed.
    pub(crate) fn wrap(
        inner: Arc<dyn Discover>,
        config: &EgressConfig,
    ) -> Result<Arc<dyn Discover>, DnsError> {
        if config.hosts.is_empty() {
            return Ok(inner);
        }
        let resolver = match config.dns_server {
            Some(server) => Resolver::new(server),
            None => Resolver::system()?,
        };
        let mut names = HashMap::new();
        for h in &config.hosts {
            let host = h.name.to_ascii_lowercase();
            if let Some(port) = h.http_port() {
                names.insert(host.clone(), (host.clone(), port));
            }
            for port in &h.connect_ports {
                names.insert(tunnel_name(&host, *port), (host.clone(), *port));
            }
        }
        Ok(Arc::new(Self {
            inner,
            resolver: Arc::new(resolver),
            names,
            followed: Mutex::new(HashMap::new()),
        }))
    }
}

/// The service a `CONNECT` to `host:port` of a listed host goes to.
pub(crate) fn tunnel_name(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

impl Discover for EgressDiscovery {
    fn watch(&self, service: &ServiceName) -> Option<watch::Receiver<Resolution>> {
        let Some((host, port)) = self.names.get(service.as_str()) else {
            return self.inner.watch(service);
        };
        let mut followed = self.followed.lock().unwrap_or_else(|e| e.into_inner());
        let rx = followed.entry(service.to_string()).or_insert_with(|| {
            let (tx, rx) = watch::channel(Resolution::Pending);
            let resolver = Arc::clone(&self.resolver);
            tokio::spawn(follow(resolver, host.clone(), *port, tx));
            rx
        });
        Some(rx.clone())
    }

    fn routes(&self, service: &ServiceName) -> watch::Receiver<RoutesState> {
        if self.names.contains_key(service.as_str()) {
            return watch::channel(RoutesState::Known(None)).1;
        }
        self.inner.routes(service)
    }

    fn snapshot(&self) -> Vec<(ServiceName, EndpointSet)> {
        let mut all = self.inner.snapshot();
        let followed = self.followed.lock().unwrap_or_else(|e| e.into_inner());
        for (name, rx) in followed.iter() {
            if let Resolution::Endpoints(set) = &*rx.borrow() {
                all.push((ServiceName::new(name), set.clone()));
            }
        }
        all
    }
}

/// Keeps `tx` holding `host`'s addresses on `port`, asking again as each answer's TTL runs
/// out, for as long as the proxy runs. A name DNS does not know has no endpoints; a server
/// that fails leaves the last addresses in place (or the service pending, before any).
async fn follow(resolver: Arc<Resolver>, host: String, port: u16, tx: watch::Sender<Resolution>) {
    loop {
        let wait = match resolver.resolve(&host).await {
            Ok(resolved) => {
                let endpoints: Vec<Endpoint> = resolved
                    .addrs
                    .iter()
                    .take(MAX_ADDRESSES)
                    .map(|ip| Endpoint {
                        addr: SocketAddr::new(*ip, port),
                        node_proxy: None,
                        protocol: Protocol::Http1,
                        weight: 1,
                        labels: BTreeMap::new(),
                    })
                    .collect();
                publish(&tx, EndpointSet::new(endpoints, vec![port]));
                resolved.ttl.clamp(MIN_REFRESH, MAX_REFRESH)
            }
            Err(DnsError::NotFound(_)) => {
                tracing::info!(%host, "egress host has no address in DNS");
                publish(&tx, EndpointSet::new(Vec::new(), vec![port]));
                RETRY
            }
            Err(e) => {
                tracing::warn!(%host, error = %e, "egress host not resolved; the last addresses stay");
                RETRY
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Sends `set` only when it differs from what the service has: an unchanged answer at each
/// TTL rebuilds nothing downstream.
fn publish(tx: &watch::Sender<Resolution>, set: EndpointSet) {
    tx.send_if_modified(|current| {
        let same = matches!(current, Resolution::Endpoints(old) if *old == set);
        if !same {
            *current = Resolution::Endpoints(set);
        }
        !same
    });
}
