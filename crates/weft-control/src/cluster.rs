//! What the control plane knows of the cluster, kept as small records rather than whole
//! Kubernetes objects, and how a service's endpoint set is derived from them.
//!
//! An endpoint enters a service's set when its EndpointSlice says it is ready and not
//! terminating, and its node (when named) still exists. Its `node_proxy` is the inbound
//! listener of the ready weft proxy pod on that node, if there is one: a pod of the
//! `weft-proxy` DaemonSet in the install namespace, and no other.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use weft_core::{Endpoint, Protocol};

use crate::gateway::{self, RouteKind, RouteObject};

/// The label that marks weft's own proxy pods (the DaemonSet's).
pub const PROXY_LABEL: (&str, &str) = ("app.kubernetes.io/name", "weft-proxy");
/// The DaemonSet whose pods are the nodes' proxies (in the install namespace).
pub const PROXY_DAEMONSET: &str = "weft-proxy";
/// The container port name of the proxy's inbound listener.
pub const INBOUND_PORT_NAME: &str = "inbound";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Where a pod's version is read from, in order.
const VERSION_LABELS: [&str; 2] = ["version", "app.kubernetes.io/version"];

/// `namespace/name` of a namespaced object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    fn of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Self> {
        Some(Self::new(
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref()?,
        ))
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceRecord {
    pub ports: Vec<PortRecord>,
    /// Zones in order of preference, from the `weft.io/failover` annotation
    /// (`zone-a,zone-b`): the next zone's endpoints only while every one before fails.
    pub failover: Vec<String>,
}

/// The Service annotation that orders its zones for failover.
pub const FAILOVER_ANNOTATION: &str = "weft.io/failover";

#[derive(Clone, Debug, PartialEq)]
pub struct PortRecord {
    pub name: String,
    pub port: u16,
    pub app_protocol: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SliceRecord {
    pub service: Key,
    pub ports: Vec<PortRecord>,
    pub endpoints: Vec<SliceEndpoint>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SliceEndpoint {
    pub addresses: Vec<IpAddr>,
    pub usable: bool,
    pub node: Option<String>,
    pub zone: Option<String>,
    pub pod: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PodRecord {
    pub labels: BTreeMap<String, String>,
    pub node: Option<String>,
    /// Set for a ready weft proxy pod: where peers reach its inbound listener.
    pub proxy_inbound: Option<SocketAddr>,
    /// Every port a weft proxy pod listens on, as reached (host port or pod port): never
    /// offered as an endpoint, which would send a request round through the mesh.
    pub proxy_ports: Vec<SocketAddr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeRecord {
    pub zone: Option<String>,
}

impl ServiceRecord {
    pub fn from_k8s(svc: &Service) -> Option<(Key, Self)> {
        let key = Key::of(&svc.metadata)?;
        let ports = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .map(|ports| {
                ports
                    .iter()
                    .filter_map(|p| {
                        Some(PortRecord {
                            name: p.name.clone().unwrap_or_default(),
                            port: u16::try_from(p.port).ok()?,
                            app_protocol: p.app_protocol.clone(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let failover = svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(FAILOVER_ANNOTATION))
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|z| !z.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Some((key, Self { ports, failover }))
    }
}

impl SliceRecord {
    pub fn from_k8s(slice: &EndpointSlice) -> Option<(Key, Self)> {
        let key = Key::of(&slice.metadata)?;
        // A slice that names no service is kept (so its deletion is seen) but serves none.
        let service_name = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .map(String::as_str)
            .unwrap_or("");
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(PortRecord {
                    name: p.name.clone().unwrap_or_default(),
                    port: u16::try_from(p.port?).ok()?,
                    app_protocol: p.app_protocol.clone(),
                })
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .flatten()
            .map(|ep| {
                let c = ep.conditions.as_ref();
                // Kubernetes: an unset `ready` means ready; `terminating` unset means not.
                let ready = c.and_then(|c| c.ready).unwrap_or(true);
                let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
                SliceEndpoint {
                    addresses: ep.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                    usable: ready && !terminating,
                    node: ep.node_name.clone(),
                    zone: ep.zone.clone(),
                    pod: ep
                        .target_ref
                        .as_ref()
                        .filter(|r| r.kind.as_deref() == Some("Pod"))
                        .and_then(|r| r.name.clone()),
                }
            })
            .collect();
        Some((
            key.clone(),
            Self {
                service: Key::new(&key.namespace, service_name),
                ports,
                endpoints,
            },
        ))
    }
}

impl PodRecord {
    pub fn from_k8s(pod: &Pod) -> Option<(Key, Self)> {
        let key = Key::of(&pod.metadata)?;
        let all = pod.metadata.labels.as_ref();
        // A label anyone can set; the controlling DaemonSet is what counts (its namespace is
        // checked where proxies are chosen, in `Cluster::view`).
        let owned = pod.metadata.owner_references.iter().flatten().any(|o| {
            o.controller == Some(true) && o.kind == "DaemonSet" && o.name == PROXY_DAEMONSET
        });
        let is_proxy = owned
            && all
                .and_then(|l| l.get(PROXY_LABEL.0))
                .is_some_and(|v| v == PROXY_LABEL.1);
        // Only the labels endpoints carry are kept: a cluster has many pods with many labels.
        let labels: BTreeMap<String, String> = all
            .into_iter()
            .flatten()
            .filter(|(k, _)| VERSION_LABELS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let proxy_ports = if is_proxy {
            let ip = |s: Option<&String>| s.and_then(|s| s.parse::<std::net::IpAddr>().ok());
            let host_ip = ip(status.and_then(|s| s.host_ip.as_ref()));
            let pod_ip = ip(status.and_then(|s| s.pod_ip.as_ref()));
            let port = |p: i32| u16::try_from(p).ok();
            spec.into_iter()
                .flat_map(|s| s.containers.iter())
                .flat_map(|c| c.ports.iter().flatten())
                .flat_map(|p| {
                    let host = host_ip.zip(p.host_port.and_then(port));
                    let pod = pod_ip.zip(port(p.container_port));
                    [host, pod]
                })
                .flatten()
                .map(|(ip, port)| SocketAddr::new(ip, port))
                .collect()
        } else {
            Vec::new()
        };
        let proxy_inbound = if is_proxy && ready && pod.metadata.deletion_timestamp.is_none() {
            spec.and_then(|spec| {
                let port = spec
                    .containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .find(|p| p.name.as_deref() == Some(INBOUND_PORT_NAME))?;
                // A hostPort is reached on the node's address; otherwise on the pod's.
                let (ip, port) = match port.host_port {
                    Some(hp) => (status?.host_ip.as_deref()?, hp),
                    None => (status?.pod_ip.as_deref()?, port.container_port),
                };
                Some(SocketAddr::new(ip.parse().ok()?, u16::try_from(port).ok()?))
            })
        } else {
            None
        };
        Some((
            key,
            Self {
                labels,
                node: spec.and_then(|s| s.node_name.clone()),
                proxy_inbound,
                proxy_ports,
            },
        ))
    }
}

impl NodeRecord {
    pub fn from_k8s(node: &Node) -> Option<(String, Self)> {
        let name = node.metadata.name.clone()?;
        let zone = node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ZONE_LABEL))
            .cloned();
        Some((name, Self { zone }))
    }
}

/// The cluster as far as routing cares.
#[derive(Default)]
pub struct Cluster {
    pub services: HashMap<Key, ServiceRecord>,
    pub slices: HashMap<Key, SliceRecord>,
    pub pods: HashMap<Key, PodRecord>,
    pub nodes: HashMap<String, NodeRecord>,
    /// Gateway API routes attached to Services, as read.
    pub http_routes: HashMap<Key, RouteObject>,
    pub grpc_routes: HashMap<Key, RouteObject>,
    /// Each route's rules in force: its last accepted ones, with the Services it had then.
    pub routes_in_force: HashMap<(RouteKind, Key), gateway::Accepted>,
    /// Services whose routes do not fit together, and why (their last routes stay).
    pub route_conflicts: HashMap<Key, String>,
    /// Each service's routes, merged from the HTTPRoutes and GRPCRoutes whose parent it is.
    pub routes: HashMap<Key, std::sync::Arc<weft_core::route::Routes>>,
    /// Where weft is installed: only proxy pods here count as a node's proxy, so a tenant
    /// who can make pods elsewhere cannot have the mesh send a node's traffic to theirs.
    pub proxy_namespace: String,
}

impl Cluster {
    /// After routes changed: each route's rules in force (a refused edit keeps the last
    /// accepted), and each service's routes from them.
    pub fn refresh_routes(&mut self) {
        let objects = || {
            let http = self
                .http_routes
                .iter()
                .map(|(k, o)| ((RouteKind::Http, k), o));
            let grpc = self
                .grpc_routes
                .iter()
                .map(|(k, o)| ((RouteKind::Grpc, k), o));
            http.chain(grpc)
        };
        for ((kind, key), object) in objects() {
            if let Some(accepted) = gateway::Accepted::of(object) {
                self.routes_in_force.insert((kind, key.clone()), accepted);
            }
        }
        let present: std::collections::HashSet<(RouteKind, &Key)> =
            objects().map(|(id, _)| id).collect();
        self.routes_in_force
            .retain(|(kind, key), _| present.contains(&(*kind, key)));
        let (routes, conflicts) =
            gateway::by_service(objects().collect(), &self.routes_in_force, &self.routes);
        self.routes = routes;
        self.route_conflicts = conflicts;
    }

    /// Every route's status as weft would report it now.
    pub fn route_statuses(&self, now: &str) -> Vec<((RouteKind, Key), serde_json::Value)> {
        let http = self
            .http_routes
            .iter()
            .map(|(k, o)| (RouteKind::Http, k, o));
        let grpc = self
            .grpc_routes
            .iter()
            .map(|(k, o)| (RouteKind::Grpc, k, o));
        http.chain(grpc)
            .map(|(kind, key, object)| {
                let id = (kind, key.clone());
                let kept = object.rules.is_err() && self.routes_in_force.contains_key(&id);
                let conflict = object.parents.iter().find_map(|p| {
                    let service = Key::new(&key.namespace, &p.name);
                    self.route_conflicts.get(&service).map(String::as_str)
                });
                let status = gateway::status(&id, object, kept, conflict, &self.services, now);
                (id, status)
            })
            .collect()
    }

    /// Lookups built once per batch of changes, so answering every subscribed service costs
    /// one pass over pods and slices, not one per service.
    pub fn view(&self) -> View<'_> {
        let mut chosen: HashMap<&str, (&Key, SocketAddr)> = HashMap::new();
        let mut proxy_ports = std::collections::HashSet::new();
        for (key, pod) in &self.pods {
            if key.namespace != self.proxy_namespace {
                continue;
            }
            proxy_ports.extend(pod.proxy_ports.iter().copied());
            if let (Some(node), Some(addr)) = (&pod.node, pod.proxy_inbound) {
                // Should a rollout briefly run two on a node, the first by name, whatever
                // order the pods were seen in: every replica of the control plane agrees.
                let e = chosen.entry(node.as_str()).or_insert((key, addr));
                if key < e.0 {
                    *e = (key, addr);
                }
            }
        }
        let proxies = chosen
            .into_iter()
            .map(|(node, (_, addr))| (node, addr))
            .collect();
        let mut slices: HashMap<&Key, Vec<&SliceRecord>> = HashMap::new();
        for slice in self.slices.values() {
            slices.entry(&slice.service).or_default().push(slice);
        }
        View {
            cluster: self,
            proxies,
            proxy_ports,
            slices,
        }
    }
}

pub struct View<'a> {
    cluster: &'a Cluster,
    /// Node name → its ready proxy's inbound address.
    proxies: HashMap<&'a str, SocketAddr>,
    /// Where weft's own proxies listen: never an endpoint.
    proxy_ports: std::collections::HashSet<SocketAddr>,
    slices: HashMap<&'a Key, Vec<&'a SliceRecord>>,
}

impl View<'_> {
    /// `service`'s failover zones, best first; empty: none.
    pub fn failover(&self, service: &Key) -> Vec<String> {
        self.cluster
            .services
            .get(service)
            .map(|s| s.failover.clone())
            .unwrap_or_default()
    }

    /// The ports `service` is reached on; `None` when there is no such service.
    pub fn ports(&self, service: &Key) -> Option<Vec<u16>> {
        let svc = self.cluster.services.get(service)?;
        Some(svc.ports.iter().map(|p| p.port).collect())
    }

    /// The ready endpoints of `service` on `port` (0: the first port), sorted by address;
    /// `None` when there is no such service.
    pub fn resolve(&self, service: &Key, port: u16) -> Option<Vec<Endpoint>> {
        let svc = self.cluster.services.get(service)?;
        let Some(svc_port) = svc
            .ports
            .iter()
            .find(|p| port == 0 || p.port == port)
            .or_else(|| svc.ports.first())
        else {
            return Some(Vec::new());
        };
        let mut out: BTreeMap<SocketAddr, Endpoint> = BTreeMap::new();
        for slice in self.slices.get(service).into_iter().flatten() {
            // A slice's port names match the service's port names.
            let Some(slice_port) = slice.ports.iter().find(|p| p.name == svc_port.name) else {
                continue;
            };
            let protocol = protocol_of(slice_port, svc_port);
            for ep in slice.endpoints.iter().filter(|e| e.usable) {
                if let Some(node) = &ep.node {
                    if !self.cluster.nodes.contains_key(node) {
                        continue; // the node is gone; its endpoints with it
                    }
                }
                let pod = ep
                    .pod
                    .as_ref()
                    .and_then(|p| self.cluster.pods.get(&Key::new(&service.namespace, p)));
                let mut labels = BTreeMap::new();
                if let Some(p) = &ep.pod {
                    labels.insert("pod".to_string(), p.clone());
                }
                if let Some(n) = &ep.node {
                    labels.insert("node".to_string(), n.clone());
                }
                let zone = ep.zone.clone().or_else(|| {
                    ep.node
                        .as_ref()
                        .and_then(|n| self.cluster.nodes.get(n))
                        .and_then(|n| n.zone.clone())
                });
                if let Some(z) = zone {
                    labels.insert("zone".to_string(), z);
                }
                if let Some(v) =
                    pod.and_then(|p| VERSION_LABELS.iter().find_map(|k| p.labels.get(*k)))
                {
                    labels.insert("version".to_string(), v.clone());
                }
                if !slice_port.name.is_empty() {
                    labels.insert("port".to_string(), slice_port.name.clone());
                }
                let node_proxy = ep
                    .node
                    .as_ref()
                    .and_then(|n| self.proxies.get(n.as_str()).copied());
                for ip in &ep.addresses {
                    let addr = SocketAddr::new(*ip, slice_port.port);
                    if self.proxy_ports.contains(&addr) {
                        tracing::debug!(%addr, service = %service.name, "an endpoint that is a weft proxy's listener is left out");
                        continue;
                    }
                    out.insert(
                        addr,
                        Endpoint {
                            addr,
                            node_proxy,
                            protocol,
                            weight: 1,
                            labels: labels.clone(),
                        },
                    );
                }
            }
        }
        Some(out.into_values().collect())
    }
}

/// HTTP/2 for ports that declare it (`appProtocol` h2c / grpc, or Istio-style names).
fn protocol_of(slice_port: &PortRecord, svc_port: &PortRecord) -> Protocol {
    let declared = slice_port
        .app_protocol
        .as_deref()
        .or(svc_port.app_protocol.as_deref())
        .unwrap_or("");
    let h2 = |s: &str| {
        let s = s.to_ascii_lowercase();
        s == "kubernetes.io/h2c" || s == "h2c" || s == "grpc" || s == "http2"
    };
    let named = |n: &str| {
        let n = n.to_ascii_lowercase();
        n == "grpc" || n.starts_with("grpc-") || n == "h2c" || n.starts_with("h2c-")
    };
    if h2(declared) || (declared.is_empty() && named(&svc_port.name)) {
        Protocol::Http2
    } else {
        Protocol::Http1
    }
}

/// Turns a name a proxy asks for into a service key: `world` (in `default_ns`),
/// `world.prod`, `world.prod.svc`, `world.prod.svc.<cluster_domain>`, with or without port.
pub fn parse_name(name: &str, default_ns: &str, cluster_domain: &str) -> Option<Key> {
    let host = name.trim().trim_end_matches('.');
    let host = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let lower = host.to_ascii_lowercase();
    let suffix = format!(".svc.{}", cluster_domain.trim_matches('.'));
    let short = lower
        .strip_suffix(suffix.as_str())
        .or_else(|| lower.strip_suffix(".svc"))
        .unwrap_or(&lower);
    let valid = |s: &str| {
        !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let key = match short.split_once('.') {
        None => Key::new(default_ns, short),
        Some((name, ns)) => Key::new(ns, name),
    };
    (valid(&key.name) && valid(&key.namespace)).then_some(key)
}

#[cfg(test)]
mod tests;
