//! A service's routes as the outbound uses them: the rule a request matches, the backend
//! each attempt goes to (drawn by weight, again for every retry, so a canary's own failures
//! show in its attempts), the rule's policy over the service's, and the route's metrics.
//! Built once per routes update; a request keeps the table it started with, so a weight
//! change never moves a request in flight.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::Request;
use weft_core::policy::PolicyOverrides;
use weft_core::route::{RequestView, Routes};
use weft_core::ServiceName;
use weft_metrics::{RouteFamilies, RuleMetrics};

use crate::error::ProxyError;
use crate::resilience::policy::Compiled;
use crate::services::{Lookup, Service, Services};

/// The rule `req` matches among `service`'s routes: `None` when the service has no routes
/// (its own endpoints take the request), an error when it has some and none matches.
pub(crate) fn route<B>(service: &Service, req: &Request<B>) -> Result<Option<Routed>, ProxyError> {
    let Some(table) = service.routes() else {
        return Ok(None);
    };
    match table.find(req) {
        Some(rule) => Ok(Some(Routed { table, rule })),
        None => Err(ProxyError::NoRoute {
            service: service.name.clone(),
        }),
    }
}

/// The backend for the next attempt, drawn by weight among those not in `skip` (a bit per
/// backend: ones found with no endpoint to take the request): its index and its state.
pub(crate) async fn backend(
    side: &Arc<Services>,
    routed: &Routed,
    skip: u32,
) -> Result<(usize, Arc<Service>), (usize, ProxyError)> {
    let rule = routed.rule();
    let i = rule.draw(skip).ok_or_else(|| {
        let name = rule.backends[0].clone();
        (0, ProxyError::NoEndpoints { service: name })
    })?;
    let name = &rule.backends[i];
    match side.get(name.as_str()).await {
        Ok(s) => Ok((i, s)),
        Err(Lookup::Unknown) => Err((
            i,
            ProxyError::NoEndpoints {
                service: name.clone(),
            },
        )),
        Err(Lookup::Unavailable) => Err((
            i,
            ProxyError::DiscoveryUnavailable {
                service: name.clone(),
            },
        )),
    }
}

pub(crate) struct RouteTable {
    routes: Arc<Routes>,
    pub rules: Vec<Rule>,
}

pub(crate) struct Rule {
    pub name: String,
    pub backends: Vec<ServiceName>,
    weights: Vec<u32>,
    total: u64,
    overrides: Option<PolicyOverrides>,
    /// The service's policy this rule's was last made from, and the rule's: remade only
    /// when the service's changes (a config reload).
    policy: ArcSwapOption<(Arc<Compiled>, Arc<Compiled>)>,
    pub metrics: RuleMetrics,
}

/// The rule a request matched, and the table it is in.
#[derive(Clone)]
pub(crate) struct Routed {
    pub table: Arc<RouteTable>,
    pub rule: usize,
}

impl Routed {
    pub(crate) fn rule(&self) -> &Rule {
        &self.table.rules[self.rule]
    }
}

impl RouteTable {
    pub(crate) fn new(service: &str, routes: Arc<Routes>, families: &RouteFamilies) -> Self {
        let rules = routes
            .rules()
            .iter()
            .map(|r| {
                let backends: Vec<&str> = r.backends.iter().map(|b| b.service.as_str()).collect();
                let overrides = PolicyOverrides {
                    timeout: r.timeout.clone(),
                    retry: r.retry.overrides(),
                    ..Default::default()
                };
                Rule {
                    name: r.name.clone(),
                    backends: r.backends.iter().map(|b| b.service.clone()).collect(),
                    weights: r.backends.iter().map(|b| b.weight).collect(),
                    total: r.backends.iter().map(|b| u64::from(b.weight)).sum(),
                    overrides: (overrides != PolicyOverrides::default()).then_some(overrides),
                    policy: ArcSwapOption::empty(),
                    metrics: families.rule(service, &r.name, &backends),
                }
            })
            .collect();
        Self { routes, rules }
    }

    pub(crate) fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Whether this table was built from `routes`.
    pub(crate) fn is(&self, routes: &Routes) -> bool {
        *self.routes == *routes
    }

    /// The rule that takes a request whatever it holds, if there is one.
    pub(crate) fn catch_all(&self) -> Option<usize> {
        self.routes.catch_all()
    }

    /// The rule `req` matches, most specific first.
    pub(crate) fn find<B>(&self, req: &Request<B>) -> Option<usize> {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let view = RequestView {
            method: req.method().as_str(),
            path: req.uri().path(),
            query: req.uri().query(),
            header: &header,
        };
        self.routes.find(&view)
    }
}

impl Rule {
    /// The rule's policy: the service's, with the rule's timeout and retry settings over it.
    pub(crate) fn policy(&self, service: &Arc<Compiled>) -> Arc<Compiled> {
        let Some(overrides) = &self.overrides else {
            return Arc::clone(service);
        };
        if let Some(cached) = &*self.policy.load() {
            if Arc::ptr_eq(&cached.0, service) {
                return Arc::clone(&cached.1);
            }
        }
        let merged = Arc::new(Compiled::new(overrides.apply(&service.policy)));
        self.policy
            .store(Some(Arc::new((Arc::clone(service), Arc::clone(&merged)))));
        merged
    }

    /// A backend's index, drawn with probability proportional to its weight among those
    /// whose bit in `skip` is clear; `None` when none of them has weight.
    pub(crate) fn draw(&self, skip: u32) -> Option<usize> {
        let weight = |i: usize| {
            if skip & (1 << i) != 0 {
                0
            } else {
                u64::from(self.weights[i])
            }
        };
        let total = if skip == 0 {
            self.total
        } else {
            (0..self.weights.len()).map(weight).sum()
        };
        if total == 0 {
            return None;
        }
        let mut r = fastrand::u64(..total);
        for i in 0..self.weights.len() {
            let w = weight(i);
            if r < w {
                return Some(i);
            }
            r -= w;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::route::{Backend, RouteRule};

    fn table(weights: &[u32]) -> RouteTable {
        let rule = RouteRule {
            name: "split".into(),
            matches: vec![],
            backends: weights
                .iter()
                .enumerate()
                .map(|(i, w)| Backend {
                    service: ServiceName::new(&format!("v{i}")),
                    weight: *w,
                })
                .collect(),
            timeout: Default::default(),
            retry: Default::default(),
        };
        let routes = Arc::new(Routes::new(vec![rule]).unwrap());
        let m = weft_metrics::Metrics::new("t");
        RouteTable::new("world", routes, &m.routes)
    }

    #[test]
    fn backends_are_drawn_by_weight_and_never_at_zero() {
        let t = table(&[90, 10, 0]);
        let mut counts = [0usize; 3];
        for _ in 0..10_000 {
            counts[t.rules[0].draw(0).unwrap()] += 1;
        }
        assert_eq!(counts[2], 0);
        assert!((800..=1200).contains(&counts[1]), "{counts:?}");
        // The heavy backend skipped: the light one takes everything; both: nothing.
        assert_eq!(t.rules[0].draw(0b001), Some(1));
        assert_eq!(t.rules[0].draw(0b011), None);
    }

    #[test]
    fn relayed_tls_takes_the_rule_that_takes_every_request_if_there_is_one() {
        let rule = |name: &str, prefix: Option<&str>| RouteRule {
            name: name.into(),
            matches: prefix
                .map(|p| {
                    vec![weft_core::route::RouteMatch {
                        path: Some(weft_core::route::PathMatch::Prefix(p.into())),
                        ..Default::default()
                    }]
                })
                .unwrap_or_default(),
            backends: vec![Backend {
                service: ServiceName::new("v1"),
                weight: 1,
            }],
            timeout: Default::default(),
            retry: Default::default(),
        };
        let m = weft_metrics::Metrics::new("t");
        let table = |rules| {
            let routes = Arc::new(Routes::new(rules).unwrap());
            RouteTable::new("world", routes, &m.routes)
        };
        let both = table(vec![rule("api", Some("/api")), rule("all", None)]);
        assert_eq!(both.catch_all(), Some(1));
        // An exact `/` wins a request for `/`, but is no catch-all.
        let mut home = rule("home", None);
        home.matches = vec![weft_core::route::RouteMatch {
            path: Some(weft_core::route::PathMatch::Exact("/".into())),
            ..Default::default()
        }];
        assert_eq!(table(vec![home, rule("all", None)]).catch_all(), Some(1));
        let slash = table(vec![rule("root", Some("/"))]);
        assert_eq!(slash.catch_all(), Some(0));
        assert_eq!(table(vec![rule("api", Some("/api"))]).catch_all(), None);
    }

    #[test]
    fn a_rule_without_settings_shares_its_service_policy() {
        let t = table(&[1]);
        let base = Arc::new(Compiled::new(Default::default()));
        assert!(Arc::ptr_eq(&t.rules[0].policy(&base), &base));
    }
}
