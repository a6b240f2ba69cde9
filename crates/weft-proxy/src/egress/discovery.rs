//! Listed egress hosts as a discovery source in front of the mesh's own: a listed host is
//! a service whose endpoints are the addresses DNS gives it, asked again when their TTL
//! runs out. `api.example.com` is its plain HTTP (on its `http_port`), and
//! `api.example.com:443` each port `CONNECT` may open; every other name is the mesh
//! source's. A host is first resolved when a request first names it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use weft_core::config::EgressConfig;
use weft_core::route::RoutesState;
use weft_core::{Endpoint, EndpointSet, Protocol, Resolution, ServiceName};
use weft_discovery::Discover;

use super::dns::{DnsError, Resolver};

/// Addresses taken from one answer: a host is balanced over a few, not hundreds.
const MAX_ADDRESSES: usize = 16;
/// A TTL shorter than this is asked again no sooner: a zero TTL would be a query per request.
const MIN_REFRESH: Duration = Duration::from_secs(1);
const MAX_REFRESH: Duration = Duration::from_secs(300);
/// After a failed lookup, the next try; the last addresses stay meanwhile.
const RETRY: Duration = Duration::from_secs(5);

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
