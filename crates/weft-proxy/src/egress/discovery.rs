//! Listed egress hosts as a discovery source in front of the mesh's own: a listed host is
//! a service whose endpoints are the addresses DNS gives it, asked again when their TTL
//! runs out. `api.example.com` is its plain HTTP (on its `http_port`), and
//! `api.example.com:443` each port `CONNECT` may open; every other name is the mesh
//! source's. A host is first resolved when a request first names it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
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
/// How long a TLS connection to a host outside the mesh idles in its pool at most.
const ORIGIN_IDLE: Duration = Duration::from_secs(30);
/// After a failed lookup, the next try; the last addresses stay meanwhile.
const RETRY: Duration = Duration::from_secs(5);

/// The egress list as the request's checks read it, and the pools of the hosts reached in
/// TLS.
#[derive(Default)]
pub(crate) struct EgressList {
    hosts: FastMap<String, EgressHost>,
    /// Every egress service name, with the pool of those reached in TLS.
    outside: Arc<Outside>,
}

/// Egress services by name: their endpoints are outside the mesh, and those of hosts
/// reached in TLS go through a pool of their own.
pub(crate) type Outside = FastMap<String, Option<Arc<H1Pool>>>;

impl EgressList {
    pub(crate) fn new(config: &EgressConfig, http: &HttpConfig) -> Result<Self, String> {
        let hosts: FastMap<String, EgressHost> = config
            .hosts
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.clone()))
            .collect();
        let mut outside = Outside::default();
        for (name, host) in &hosts {
            for port in &host.connect_ports {
                outside.insert(tunnel_name(name, *port), None);
            }
            if host.http_port().is_none() {
                continue;
            }
            let pool = match host.tls {
                true => {
                    let origin = origin_tls(name, host.tls_ca.as_deref())?;
                    let connector = Connector {
                        origin: Some(origin),
                        ..Connector::plain(http.connect_timeout)
                    };
                    // Idle no longer than a server is likely to keep it: a connection it
                    // closed in the meantime costs a resend.
                    let idle = http.pool_idle_timeout.min(ORIGIN_IDLE);
                    Some(H1Pool::new(connector, idle, http.pool_max_idle))
                }
                false => None,
            };
            outside.insert(name.clone(), pool);
        }
        Ok(Self {
            hosts,
            outside: Arc::new(outside),
        })
    }

    /// The listed host `name` names, if any.
    pub(crate) fn host(&self, name: &str) -> Option<&EgressHost> {
        // Every listed name has a dot; mesh services' names seldom do.
        if self.hosts.is_empty() || !name.contains('.') {
            return None;
        }
        self.hosts.get(name)
    }

    /// Every egress service, by name.
    pub(crate) fn outside(&self) -> Arc<Outside> {
        Arc::clone(&self.outside)
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
    /// Service name → the host, the port its endpoints are on, and whether it may resolve to
    /// internal addresses.
    names: HashMap<String, (String, u16, bool)>,
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
            let internal = h.allow_internal;
            if let Some(port) = h.http_port() {
                names.insert(host.clone(), (host.clone(), port, internal));
            }
            for port in &h.connect_ports {
                names.insert(tunnel_name(&host, *port), (host.clone(), *port, internal));
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
        let Some((host, port, internal)) = self.names.get(service.as_str()) else {
            return self.inner.watch(service);
        };
        let mut followed = self.followed.lock().unwrap_or_else(|e| e.into_inner());
        let rx = followed.entry(service.to_string()).or_insert_with(|| {
            let (tx, rx) = watch::channel(Resolution::Pending);
            let resolver = Arc::clone(&self.resolver);
            let target = Target {
                host: host.clone(),
                port: *port,
                allow_internal: *internal,
            };
            tokio::spawn(follow(resolver, target, tx));
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

/// What a followed name resolves for.
struct Target {
    host: String,
    port: u16,
    allow_internal: bool,
}

/// Keeps `tx` holding the host's addresses on its port, asking again as each answer's TTL
/// runs out, for as long as the proxy runs. A name DNS does not know has no endpoints, nor
/// does one not yet resolved when its server fails (requests fail fast rather than wait); a
/// server that fails later leaves the last addresses in place.
async fn follow(resolver: Arc<Resolver>, target: Target, tx: watch::Sender<Resolution>) {
    let Target {
        host,
        port,
        allow_internal,
    } = target;
    let none = || EndpointSet::new(Vec::new(), vec![port]);
    loop {
        let wait = match resolver.resolve(&host).await {
            Ok(resolved) => {
                let usable = |ip: &IpAddr| allow_internal || !internal(ip);
                let endpoints: Vec<Endpoint> = resolved
                    .addrs
                    .iter()
                    .filter(|ip| usable(ip))
                    .take(MAX_ADDRESSES)
                    .map(|ip| Endpoint {
                        addr: SocketAddr::new(*ip, port),
                        node_proxy: None,
                        protocol: Protocol::Http1,
                        weight: 1,
                        labels: BTreeMap::new(),
                    })
                    .collect();
                if endpoints.len() < resolved.addrs.len().min(MAX_ADDRESSES) {
                    tracing::warn!(%host, "egress host resolved to internal addresses, left out (allow_internal lets them in)");
                }
                publish(&tx, EndpointSet::new(endpoints, vec![port]));
                resolved.ttl.clamp(MIN_REFRESH, MAX_REFRESH)
            }
            Err(DnsError::NotFound(_)) => {
                tracing::info!(%host, "egress host has no address in DNS");
                publish(&tx, none());
                RETRY
            }
            Err(e) => {
                tracing::warn!(%host, error = %e, "egress host not resolved; the last addresses stay");
                if matches!(*tx.borrow(), Resolution::Pending) {
                    publish(&tx, none());
                }
                RETRY
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Addresses a host outside the mesh has no business resolving to: this node itself, the
/// cloud's metadata service (link-local), nowhere, or everyone.
fn internal(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unicast_link_local()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| internal(&IpAddr::V4(v4)))
        }
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
