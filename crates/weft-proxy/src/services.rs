//! Per-service state, built once when a service is first asked for and kept current by a
//! task that follows discovery: its endpoints (with their load and metrics), its routes
//! (outbound only: which other services its requests go to), and its own metrics handle
//! for errors made before an endpoint is chosen.

use std::future::Future;
use std::sync::{Arc, RwLock};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::watch;
use weft_core::route::{Routes, RoutesState};
use weft_core::ServiceName;
use weft_discovery::{Discover, Resolution};
use weft_metrics::{
    Direction, HttpMetrics, RouteFamilies, RouteMetrics, ServiceCounters, UNKNOWN_SERVICE,
};

use crate::balancer::EndpointState;
use crate::egress::list::Outside;
use crate::resilience::budget::RetryBudget;
use crate::resilience::policy::Table as PolicyTable;
use crate::routing::RouteTable;
use crate::FastMap;

pub(crate) struct Service {
    pub name: ServiceName,
    /// Counts errors that happen before an endpoint is picked (`endpoint=""`).
    pub metrics: RouteMetrics,
    pub counters: ServiceCounters,
    pub budget: RetryBudget,
    endpoints: ArcSwap<Endpoints>,
    /// Where its requests go instead of its own endpoints, when it has routes.
    routes: ArcSwapOption<RouteTable>,
    /// Whether it has routes: one relaxed load on every request, where most services have
    /// none, instead of the table's.
    routed: std::sync::atomic::AtomicBool,
}

/// A service's endpoints at one moment; replaced whole when discovery changes.
#[derive(Default)]
pub(crate) struct Endpoints {
    pub exists: bool,
    /// With failover, ordered by group: the first group's endpoints first.
    pub list: Vec<Arc<EndpointState>>,
    /// Where each failover group ends in `list`; empty without failover.
    pub groups: Vec<usize>,
    /// The ports the service is reached on, when discovery says; empty: any.
    pub ports: Vec<u16>,
}

impl Endpoints {
    /// The failover groups, best first; one group (the whole list) without failover.
    pub(crate) fn groups(&self) -> impl Iterator<Item = &[Arc<EndpointState>]> {
        let mut start = 0;
        self.groups.iter().map(move |&end| {
            let g = &self.list[start..end];
            start = end;
            g
        })
    }

    pub(crate) fn has_port(&self, port: u16) -> bool {
        self.ports.is_empty() || self.ports.contains(&port)
    }
}

impl Service {
    pub(crate) fn endpoints(&self) -> arc_swap::Guard<Arc<Endpoints>> {
        self.endpoints.load()
    }

    pub(crate) fn routes(&self) -> Option<Arc<RouteTable>> {
        if !self.routed.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        self.routes.load_full()
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
    /// Outbound only: the inbound delivers to the endpoint a peer chose, never by route.
    route_families: Option<RouteFamilies>,
    map: RwLock<FastMap<ServiceName, Arc<Service>>>,
    unknown: RouteMetrics,
    policies: Arc<ArcSwap<PolicyTable>>,
    /// Egress services: their endpoints are outside the mesh (some reached in TLS).
    outside: Arc<Outside>,
}

impl Services {
    pub(crate) fn new(
        direction: Direction,
        local: Option<std::net::SocketAddr>,
        discovery: Arc<dyn Discover>,
        metrics: HttpMetrics,
        route_families: Option<RouteFamilies>,
        policies: Arc<ArcSwap<PolicyTable>>,
        outside: Arc<Outside>,
    ) -> Arc<Self> {
        let unknown = metrics.route(direction, UNKNOWN_SERVICE, "");
        Arc::new(Self {
            direction,
            local,
            discovery,
            metrics,
            route_families,
            map: RwLock::new(FastMap::default()),
            unknown,
            policies,
            outside,
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
        let mut routes = self
            .route_families
            .as_ref()
            .map(|_| self.discovery.routes(name));
        if let Some(r) = &mut routes {
            // A remote source's first word on the routes comes soon after its endpoints;
            // without it a routed service's first requests would go to its own endpoints.
            if *r.borrow() == RoutesState::Pending {
                let answered = |s: &RoutesState| *s != RoutesState::Pending;
                let _ = tokio::time::timeout(LOOKUP_TIMEOUT, r.wait_for(answered)).await;
            }
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
            routes: ArcSwapOption::empty(),
            routed: Default::default(),
        });
        self.apply(&service, &rx.borrow());
        if let Some(r) = &mut routes {
            self.apply_routes(&service, r.borrow_and_update().routes());
        }
        map.insert(name.clone(), Arc::clone(&service));
        drop(map);
        tokio::spawn(Arc::clone(self).follow(Arc::clone(&service), rx, routes));
        Ok(service)
    }

    async fn follow(
        self: Arc<Self>,
        service: Arc<Service>,
        mut rx: watch::Receiver<Resolution>,
        mut routes: Option<watch::Receiver<RoutesState>>,
    ) {
        loop {
            let routes_changed = async {
                match &mut routes {
                    Some(r) => r.changed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let gone = matches!(*rx.borrow_and_update(), Resolution::DoesNotExist);
                    self.apply(&service, &rx.borrow());
                    if gone {
                        break;
                    }
                }
                changed = routes_changed => match changed {
                    Ok(()) => {
                        let next = routes.as_mut().and_then(|r| r.borrow_and_update().routes());
                        self.apply_routes(&service, next);
                    }
                    // The source knows no routes: keep following the endpoints alone.
                    Err(_) => routes = None,
                },
            }
        }
        self.apply_routes(&service, None);
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
                let mut ordered: Vec<(usize, &weft_core::Endpoint)> = set
                    .iter()
                    .filter(|ep| self.local.is_none() || ep.node_proxy == self.local)
                    .map(|ep| (set.group_of(ep), ep))
                    .collect();
                // Stable: within a group, the order discovery gave.
                ordered.sort_by_key(|(group, _)| *group);
                let mut groups = Vec::new();
                if !set.failover().is_empty() && self.local.is_none() {
                    for (i, (group, _)) in ordered.iter().enumerate() {
                        if ordered.get(i + 1).map(|(next, _)| next) != Some(group) {
                            groups.push(i + 1);
                        }
                    }
                }
                let list = ordered
                    .into_iter()
                    .map(|(_, ep)| ep)
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
                                let mut state = EndpointState::new(name, ep, label, m, rtt);
                                if let Some(pool) = self.outside.get(name.as_str()) {
                                    state.outside = true;
                                    state.origin = pool.clone();
                                }
                                Arc::new(state)
                            })
                    })
                    .collect();
                Endpoints {
                    exists: true,
                    list,
                    groups,
                    ports: set.ports().to_vec(),
                }
            }
        };
        service.counters.endpoints.set(next.list.len() as i64);
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

    /// Replaces the service's route table when its routes changed; the rules that left
    /// take their series with them.
    fn apply_routes(&self, service: &Service, routes: Option<Arc<Routes>>) {
        let Some(families) = &self.route_families else {
            return;
        };
        let current = service.routes.load();
        if let (Some(cur), Some(next)) = (&*current, &routes) {
            if cur.is(next) {
                return;
            }
        }
        drop(current);
        let next = routes.map(|r| Arc::new(RouteTable::new(service.name.as_str(), r, families)));
        if let Some(t) = &next {
            let names: Vec<&str> = t.rules.iter().map(|r| r.name.as_str()).collect();
            tracing::info!(service = %service.name, routes = ?names, "routes updated");
        }
        let routed = next.is_some();
        let before = service.routes.swap(next);
        service
            .routed
            .store(routed, std::sync::atomic::Ordering::Relaxed);
        if let Some(before) = before {
            // Requests in flight may hold the old table: its series retire now, and are
            // rendered once more, unless the new table made the same ones again.
            for rule in &before.rules {
                families.retire(rule.metrics.clone());
            }
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
