//! Per-service state, built once when a service is first asked for and kept current by a
//! task that follows discovery: its endpoints (with their load and metrics) and its own
//! metrics handle for errors made before an endpoint is chosen.

use std::future::Future;
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use weft_core::ServiceName;
use weft_discovery::{Discover, Resolution};
use weft_metrics::{Direction, HttpMetrics, RouteMetrics, ServiceCounters, UNKNOWN_SERVICE};

use crate::balancer::EndpointState;
use crate::resilience::budget::RetryBudget;
use crate::resilience::policy::Table as PolicyTable;
use crate::FastMap;

pub(crate) struct Service {
    pub name: ServiceName,
    /// Counts errors that happen before an endpoint is picked (`endpoint=""`).
    pub metrics: RouteMetrics,
    pub counters: ServiceCounters,
    pub budget: RetryBudget,
    endpoints: ArcSwap<Endpoints>,
}

/// A service's endpoints at one moment; replaced whole when discovery changes.
#[derive(Default)]
pub(crate) struct Endpoints {
    pub exists: bool,
    pub list: Vec<Arc<EndpointState>>,
    /// The ports the service is reached on, when discovery says; empty: any.
    pub ports: Vec<u16>,
}

impl Endpoints {
    pub(crate) fn has_port(&self, port: u16) -> bool {
        self.ports.is_empty() || self.ports.contains(&port)
    }
}

impl Service {
    pub(crate) fn endpoints(&self) -> arc_swap::Guard<Arc<Endpoints>> {
        self.endpoints.load()
    }
}

/// How long a request waits for a remote discovery source's first answer about a service.
pub(crate) const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Why a service could not be looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Discovery says there is no such service.
    Unknown,
    /// Discovery did not answer in time.
    Unavailable,
}

pub(crate) struct Services {
    direction: Direction,
    /// Inbound only: keep just the endpoints on this node (the inbound address peers use),
    /// so nothing else can be reached, or even get a metrics series.
    local: Option<std::net::SocketAddr>,
    discovery: Arc<dyn Discover>,
    metrics: HttpMetrics,
    map: RwLock<FastMap<ServiceName, Arc<Service>>>,
    unknown: RouteMetrics,
    policies: Arc<ArcSwap<PolicyTable>>,
}

impl Services {
    pub(crate) fn new(
        direction: Direction,
        local: Option<std::net::SocketAddr>,
        discovery: Arc<dyn Discover>,
        metrics: HttpMetrics,
        policies: Arc<ArcSwap<PolicyTable>>,
    ) -> Arc<Self> {
        let unknown = metrics.route(direction, UNKNOWN_SERVICE, "");
        Arc::new(Self {
            direction,
            local,
            discovery,
            metrics,
            map: RwLock::new(FastMap::default()),
            unknown,
            policies,
        })
    }

    /// Metrics for requests that could not be tied to a known service.
    pub(crate) fn unknown_metrics(&self) -> &RouteMetrics {
        &self.unknown
    }

    /// The service's state when it is already known: how nearly every lookup is answered.
    fn cached(&self, name: &str) -> Option<Arc<Service>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(name)
            .filter(|s| s.endpoints.load().exists)
            .map(Arc::clone)
    }

    /// The service's state. A remote source's first answer for a name is awaited, up to
    /// [`LOOKUP_TIMEOUT`]; after that every lookup is answered from memory. The wait is
    /// boxed: the request's future holds this one, and the waiting state would enlarge it
    /// for every request, though it is needed only for the first one to name a service.
    pub(crate) fn get<'a>(
        self: &'a Arc<Self>,
        name: &'a str,
    ) -> impl Future<Output = Result<Arc<Service>, Lookup>> + 'a {
        let known = self.cached(name);
        async move {
            match known {
                Some(s) => Ok(s),
                None => Box::pin(self.resolve(name)).await,
            }
        }
    }

    async fn resolve(self: &Arc<Self>, name: &str) -> Result<Arc<Service>, Lookup> {
        let name = &ServiceName::new(name);
        let mut rx = self.discovery.watch(name).ok_or(Lookup::Unknown)?;
        if matches!(*rx.borrow(), Resolution::Pending) {
            let answered = tokio::time::timeout(
                LOOKUP_TIMEOUT,
                rx.wait_for(|r| !matches!(r, Resolution::Pending)),
            )
            .await;
            if !matches!(answered, Ok(Ok(_))) {
                return Err(Lookup::Unavailable);
            }
        }
        if matches!(*rx.borrow(), Resolution::DoesNotExist) {
            return Err(Lookup::Unknown);
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(name) {
            if s.endpoints.load().exists {
                return Ok(Arc::clone(s));
            }
        }
        let service = Arc::new(Service {
            name: name.clone(),
            metrics: self.metrics.route(self.direction, name.as_str(), ""),
            counters: self.metrics.service(self.direction, name.as_str()),
            budget: RetryBudget::default(),
            endpoints: ArcSwap::from_pointee(Endpoints::default()),
        });
        self.apply(&service, &rx.borrow());
        map.insert(name.clone(), Arc::clone(&service));
        drop(map);
        tokio::spawn(Arc::clone(self).follow(Arc::clone(&service), rx));
        Ok(service)
    }

    async fn follow(self: Arc<Self>, service: Arc<Service>, mut rx: watch::Receiver<Resolution>) {
        while rx.changed().await.is_ok() {
            let gone = matches!(*rx.borrow_and_update(), Resolution::DoesNotExist);
            self.apply(&service, &rx.borrow());
            if gone {
                break;
            }
        }
        // Gone from discovery: forget it, so the next request asks discovery afresh, and let
        // its series go once collected.
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map
            .get(&service.name)
            .is_some_and(|s| Arc::ptr_eq(s, &service))
        {
            map.remove(&service.name);
        }
        drop(map);
        // Retires whatever endpoints it still had (discovery went away without a last word).
        self.apply(&service, &Resolution::DoesNotExist);
        self.metrics.retire(&service.metrics);
        self.metrics
            .retire_service(self.direction, service.name.as_str());
    }

    fn apply(&self, service: &Service, resolution: &Resolution) {
        let next = match resolution {
            Resolution::DoesNotExist => Endpoints::default(),
            // Only a source's first state is pending, and `get` waits that out.
            Resolution::Pending => return,
            Resolution::Endpoints(set) => {
                let current = service.endpoints.load();
                let balancer = self
                    .policies
                    .load()
                    .get(service.name.as_str())
                    .policy
                    .balancer
                    .clone();
                // A new endpoint starts at its peers' average latency, so it is neither
                // starved (a high guess) nor flooded (a low one); default_rtt only without peers.
                let now = std::time::Instant::now();
                let known: Vec<f64> = current
                    .list
                    .iter()
                    .map(|e| e.ewma.estimate(now, balancer.decay))
                    .collect();
                let rtt = if known.is_empty() {
                    balancer.default_rtt
                } else {
                    std::time::Duration::from_secs_f64(
                        known.iter().sum::<f64>() / known.len() as f64,
                    )
                };
                let list = set
                    .iter()
                    .filter(|ep| self.local.is_none() || ep.node_proxy == self.local)
                    .map(|ep| {
                        // Keep an unchanged endpoint's state: its in-flight count matters.
                        current
                            .list
                            .iter()
                            .find(|s| s.endpoint == *ep)
                            .cloned()
                            .unwrap_or_else(|| {
                                let label = ep.addr.to_string();
                                let m = self.metrics.route(
                                    self.direction,
                                    service.name.as_str(),
                                    &label,
                                );
                                let ep = ep.clone();
                                let name = &service.name;
                                Arc::new(EndpointState::new(name, ep, label, m, rtt))
                            })
                    })
                    .collect();
                Endpoints {
                    exists: true,
                    list,
                    ports: set.ports().to_vec(),
                }
            }
        };
        let next = Arc::new(next);
        let before = service.endpoints.swap(Arc::clone(&next));
        // Endpoints that left: their series go once collected.
        for gone in before
            .list
            .iter()
            .filter(|e| !next.list.iter().any(|n| Arc::ptr_eq(n, e)))
        {
            self.metrics.retire(&gone.metrics);
        }
    }

    /// Every service this side has routed to, for the admin API.
    pub(crate) fn all(&self) -> Vec<Arc<Service>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = map.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}
