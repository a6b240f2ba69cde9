//! Families of a service's routes: what callers saw per route (requests, responses, latency)
//! and what each backend of a route did with every attempt sent to it (attempts by outcome,
//! latency), the figures a canary is judged on. Route and backend names come from config
//! or the routes' resources, never from requests, so the series count stays bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::http::{latency_histogram, Classification};
use crate::names::family;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    service: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleResponseLabels {
    service: String,
    route: String,
    classification: Classification,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    service: String,
    route: String,
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendAttemptLabels {
    service: String,
    route: String,
    backend: String,
    classification: Classification,
}

#[derive(Clone)]
pub struct RouteFamilies {
    requests: Family<RuleLabels, Counter>,
    responses: Family<RuleResponseLabels, Counter>,
    latency: Family<RuleLabels, Histogram, fn() -> Histogram>,
    attempts: Family<BackendAttemptLabels, Counter>,
    backend_latency: Family<BackendLabels, Histogram, fn() -> Histogram>,
    retiring: std::sync::Arc<Retiring>,
}

/// Rules that left: rendered once more, so their last counts are collected, then removed.
#[derive(Default)]
struct Retiring {
    renders: AtomicU64,
    queue: Mutex<Vec<(u64, RuleMetrics)>>,
    /// Handles given out and not retired, per (service, route, backend); "" for the rule.
    held: Mutex<HashMap<(String, String, String), usize>>,
}

impl Retiring {
    fn keys(rule: &RuleMetrics) -> impl Iterator<Item = (String, String, String)> + '_ {
        let (s, r) = (&rule.labels.service, &rule.labels.route);
        std::iter::once(String::new())
            .chain(rule.backends.iter().map(|b| b.backend.clone()))
            .map(|b| (s.clone(), r.clone(), b))
    }

    fn hold_keys(&self, service: &str, route: &str, backends: &[&str]) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let keys = std::iter::once("").chain(backends.iter().copied());
        for b in keys {
            let k = (service.to_string(), route.to_string(), b.to_string());
            *held.entry(k).or_default() += 1;
        }
    }

    fn release(&self, rule: &RuleMetrics) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for k in Self::keys(rule) {
            if let Some(n) = held.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    held.remove(&k);
                }
            }
        }
    }

    fn live(&self, service: &str, route: &str, backend: &str) -> bool {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.contains_key(&(service.to_string(), route.to_string(), backend.to_string()))
    }
}

/// One route's handles, and its backends' in the order the rule lists them.
#[derive(Clone)]
pub struct RuleMetrics {
    labels: RuleLabels,
    requests: Counter,
    ok: Counter,
    failed: Counter,
    latency: Histogram,
    pub backends: Vec<BackendMetrics>,
}

#[derive(Clone)]
pub struct BackendMetrics {
    backend: String,
    ok: Counter,
    failed: Counter,
    latency: Histogram,
}

impl RouteFamilies {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            responses: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            attempts: Family::default(),
            backend_latency: Family::new_with_constructor(latency_histogram),
            retiring: Default::default(),
        };
        registry.register(
            family::ROUTE_REQUESTS,
            "Requests a route matched, per service and route",
            m.requests.clone(),
        );
        registry.register(
            family::ROUTE_RESPONSES,
            "Responses to a route's requests as callers saw them, by classification",
            m.responses.clone(),
        );
        registry.register(
            family::ROUTE_LATENCY,
            "Time from a route's request received to its response headers",
            m.latency.clone(),
        );
        registry.register(
            family::ROUTE_BACKEND_ATTEMPTS,
            "Attempts a route sent to each backend, retries included, by outcome",
            m.attempts.clone(),
        );
        registry.register(
            family::ROUTE_BACKEND_LATENCY,
            "Time from an attempt sent to a backend to its response headers (or failure)",
            m.backend_latency.clone(),
        );
        m
    }

    /// Handles for `service`'s rule `route` and its `backends`; resolve once per routes
    /// update and keep.
    pub fn rule(&self, service: &str, route: &str, backends: &[&str]) -> RuleMetrics {
        // Held before its series are made: a render pruning a retired rule of the same name
        // meanwhile must see them live, or it would remove what this handle counts into.
        self.retiring.hold_keys(service, route, backends);
        let labels = RuleLabels {
            service: service.to_string(),
            route: route.to_string(),
        };
        let response = |classification| {
            self.responses
                .get_or_create(&RuleResponseLabels {
                    service: service.to_string(),
                    route: route.to_string(),
                    classification,
                })
                .clone()
        };
        let backends = backends
            .iter()
            .map(|b| {
                let attempts = |classification| {
                    self.attempts
                        .get_or_create(&BackendAttemptLabels {
                            service: service.to_string(),
                            route: route.to_string(),
                            backend: b.to_string(),
                            classification,
                        })
                        .clone()
                };
                let latency = BackendLabels {
                    service: service.to_string(),
                    route: route.to_string(),
                    backend: b.to_string(),
                };
                BackendMetrics {
                    backend: b.to_string(),
                    ok: attempts(Classification::Success),
                    failed: attempts(Classification::Failure),
                    latency: self.backend_latency.get_or_create(&latency).clone(),
                }
            })
            .collect();
        let rule = RuleMetrics {
            requests: self.requests.get_or_create(&labels).clone(),
            latency: self.latency.get_or_create(&labels).clone(),
            ok: response(Classification::Success),
            failed: response(Classification::Failure),
            labels,
            backends,
        };
        rule
    }

    /// `rule` is gone from its service's routes: its series go after the next render,
    /// unless a rule of the same name and backends is made again before then.
    pub fn retire(&self, rule: RuleMetrics) {
        self.retiring.release(&rule);
        let at = self.retiring.renders.load(Ordering::Acquire);
        self.retiring
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((at, rule));
    }

    pub(crate) fn prune(&self) {
        let live = |s: &str, r: &str, b: &str| self.retiring.live(s, r, b);
        let now = self.retiring.renders.fetch_add(1, Ordering::AcqRel);
        let mut queue = self
            .retiring
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        queue.retain(|(at, rule)| {
            if *at >= now {
                return true;
            }
            let (service, route) = (&rule.labels.service, &rule.labels.route);
            for b in &rule.backends {
                if live(service, route, &b.backend) {
                    continue;
                }
                let labels = BackendLabels {
                    service: service.clone(),
                    route: route.clone(),
                    backend: b.backend.clone(),
                };
                self.backend_latency.remove(&labels);
                for classification in [Classification::Success, Classification::Failure] {
                    self.attempts.remove(&BackendAttemptLabels {
                        service: service.clone(),
                        route: route.clone(),
                        backend: b.backend.clone(),
                        classification,
                    });
                }
            }
            if !live(service, route, "") {
                self.requests.remove(&rule.labels);
                self.latency.remove(&rule.labels);
                for classification in [Classification::Success, Classification::Failure] {
                    self.responses.remove(&RuleResponseLabels {
                        service: service.clone(),
                        route: route.clone(),
                        classification,
                    });
                }
            }
            false
        });
    }
}

impl RuleMetrics {
    /// A request this rule matched: counted with its latency to the response headers.
    pub fn request(&self, latency: Duration) {
        self.requests.inc();
        self.latency.observe(latency.as_secs_f64());
    }

    /// The response as the caller saw it, when its body ends.
    pub fn response(&self, class: Classification) {
        match class {
            Classification::Success => self.ok.inc(),
            Classification::Failure => self.failed.inc(),
        };
    }
}

impl BackendMetrics {
    pub fn attempt(&self, class: Classification, latency: Duration) {
        match class {
            Classification::Success => self.ok.inc(),
            Classification::Failure => self.failed.inc(),
        };
        self.latency.observe(latency.as_secs_f64());
    }
}
