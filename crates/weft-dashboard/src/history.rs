//! The dashboard's memory: each scrape turns cumulative counters into per-interval deltas,
//! added up per key (cluster, service, node, endpoint) into a bounded ring of points.
//! Windows and time series are sums over those points; latency quantiles come from summed
//! histogram buckets, interpolated as Prometheus' `histogram_quantile` does. Beside what
//! callers saw (responses), every attempt sent and the retries behind it are kept, so a
//! window shows what retries hid.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use weft_metrics::http::LATENCY_BUCKETS;
use weft_metrics::names::{label, sample};
use weft_metrics::{Classification, Direction, UNKNOWN_SERVICE};

use crate::source::Scrape;

/// The `service` value of requests that named no known service; counted in the cluster's
/// totals, not listed as a service.

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Cluster,
    Service(String),
    Node(String),
    Endpoint {
        service: String,
        endpoint: String,
    },
    /// What callers of a service saw per rule of its routes.
    Route {
        service: String,
        route: String,
    },
    /// Every attempt a rule sent to one of its backends (requests count attempts).
    Backend {
        service: String,
        route: String,
        backend: String,
    },
}

impl Key {
    /// Whether the proxies count this scope's retries: they do per service (so the
    /// cluster, a node and a service have them) and per endpoint (against the endpoint
    /// whose failed attempt led to the retry). A rule or a backend has none of its own.
    fn has_retries(&self) -> bool {
        matches!(
            self,
            Self::Cluster | Self::Service(_) | Self::Node(_) | Self::Endpoint { .. }
        )
    }
}

/// Counts over one interval. `buckets[i]` is cumulative: responses at or under bound `i`
/// (the last is +Inf).
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub requests: f64,
    pub success: f64,
    pub failure: f64,
    pub c4xx: f64,
    pub c5xx: f64,
    pub buckets: Vec<f64>,
    /// Requests that reached inbounds from peers over mutual TLS, and in plaintext.
    pub peer_mtls: f64,
    pub peer_plain: f64,
    /// Every attempt sent, retries included, by outcome: where `success` and `failure` are
    /// what callers saw, these are what the endpoints did.
    pub attempts_ok: f64,
    pub attempts_failed: f64,
    /// Attempts beyond a request's first, and retries the budget refused: per service and
    /// proxy, and per endpoint for the endpoint whose failed attempt each followed.
    pub retries: f64,
    pub budget_refused: f64,
    /// The seconds callers waited for responses, added up: over a window's length, the
    /// requests in flight on average (Little's law).
    pub latency_sum: f64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.success += o.success;
        self.failure += o.failure;
        self.c4xx += o.c4xx;
        self.c5xx += o.c5xx;
        self.peer_mtls += o.peer_mtls;
        self.peer_plain += o.peer_plain;
        self.attempts_ok += o.attempts_ok;
        self.attempts_failed += o.attempts_failed;
        self.retries += o.retries;
        self.budget_refused += o.budget_refused;
        self.latency_sum += o.latency_sum;
        if self.buckets.len() < o.buckets.len() {
            self.buckets.resize(o.buckets.len(), 0.0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
    }

    fn scale(&mut self, f: f64) {
        self.requests *= f;
        self.success *= f;
        self.failure *= f;
        self.c4xx *= f;
        self.c5xx *= f;
        self.peer_mtls *= f;
        self.peer_plain *= f;
        self.attempts_ok *= f;
        self.attempts_failed *= f;
        self.retries *= f;
        self.budget_refused *= f;
        self.latency_sum *= f;
        for b in &mut self.buckets {
            *b *= f;
        }
    }

    /// The share of requests between nodes that were mutual TLS.
    pub fn mtls_share(&self) -> Option<f64> {
        let all = self.peer_mtls + self.peer_plain;
        (all > 0.0).then(|| self.peer_mtls / all)
    }

    /// The effective success rate: of the responses callers got, the share that succeeded.
    pub fn success_rate(&self) -> Option<f64> {
        let all = self.success + self.failure;
        (all > 0.0).then(|| self.success / all)
    }

    /// The actual success rate: of every attempt sent, retries included, the share that
    /// succeeded.
    pub fn actual_success_rate(&self) -> Option<f64> {
        let all = self.attempts_ok + self.attempts_failed;
        (all > 0.0).then(|| self.attempts_ok / all)
    }

    /// The `q` quantile in seconds, or `None` with no observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = *self.buckets.last()?;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let i = self.buckets.iter().position(|&c| c >= rank)?;
        if i >= LATENCY_BUCKETS.len() {
            return LATENCY_BUCKETS.last().copied();
        }
        let upper = LATENCY_BUCKETS[i];
        let (lower, below) = if i == 0 {
            (0.0, 0.0)
        } else {
            (LATENCY_BUCKETS[i - 1], self.buckets[i - 1])
        };
        let inside = self.buckets[i] - below;
        if inside <= 0.0 {
            return Some(upper);
        }
        Some(lower + (upper - lower) * (rank - below) / inside)
    }
}

#[derive(Clone, Debug)]
struct Point {
    /// Unix seconds at the end of the interval.
    t: f64,
    dt: f64,
    counts: Counts,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProxyStatus {
    pub target: String,
    pub node: String,
    pub up: bool,
    /// The proxy's mesh identity, when it has one.
    pub identity: Option<String>,
    /// Its inbound listener, which the dashboard taps over mutual TLS.
    pub inbound: Option<std::net::SocketAddr>,
}

/// A window's figures, as the API and `weft stat` show them.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Stats {
    pub requests: f64,
    pub rps: f64,
    /// The effective success rate: what callers saw, after any retries.
    pub success_rate: Option<f64>,
    /// Attempts sent (retries included) and the share that succeeded, none without
    /// attempts: below `success_rate` when retries hid failures.
    pub attempts: f64,
    pub actual_success_rate: Option<f64>,
    /// Retries a second, and retries the budget refused over the whole window (a count:
    /// refusals are rare, and as a rate they would read as zero). Only where the proxies
    /// count them, per service, proxy and endpoint: none for a route or a backend.
    pub retry_rps: Option<f64>,
    pub budget_refusals: Option<f64>,
    pub rate_4xx: f64,
    pub rate_5xx: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Of the requests that crossed between nodes into this scope's inbounds, the share
    /// over mutual TLS.
    pub mtls_share: Option<f64>,
    /// Requests in flight, on average over the window: the time callers spent waiting for
    /// response headers, per second of the window (Little's law).
    pub in_flight: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SeriesPoint {
    pub t: f64,
    pub rps: f64,
    pub success_rate: Option<f64>,
    pub actual_success_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

pub struct History {
    capacity: usize,
    series: HashMap<Key, VecDeque<Point>>,
    /// Last cumulative value per (proxy, raw series), to turn counters into deltas.
    last: HashMap<String, HashMap<String, f64>>,
    proxies: Vec<ProxyStatus>,
    /// Which node each endpoint lives on, learnt from inbound metrics.
    endpoint_nodes: HashMap<String, String>,
    last_t: Option<f64>,
    /// When each target's samples were last taken, where the source says (Prometheus).
    last_at: HashMap<String, f64>,
    /// Each dated target's per-second counts since its last scrape.
    rates: HashMap<String, HashMap<Key, Counts>>,
    /// Per service, the endpoints discovery gave it at each round: the most any caller's
    /// proxy reported (proxies that resolved it agree, unless one lags an update).
    instances: HashMap<String, VecDeque<(f64, f64)>>,
}

/// `c`'s figures over `seconds`; `retries` says whether the scope has retry counts.
fn stats_of(c: &Counts, seconds: f64, retries: bool) -> Stats {
    let per_s = |x: f64| if seconds > 0.0 { x / seconds } else { 0.0 };
    let ms = |q| c.quantile(q).map(|s| s * 1000.0);
    Stats {
        requests: c.requests,
        rps: per_s(c.requests),
        success_rate: c.success_rate(),
        attempts: c.attempts_ok + c.attempts_failed,
        actual_success_rate: c.actual_success_rate(),
        retry_rps: retries.then(|| per_s(c.retries)),
        budget_refusals: retries.then_some(c.budget_refused),
        rate_4xx: per_s(c.c4xx),
        rate_5xx: per_s(c.c5xx),
        p50_ms: ms(0.5),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        mtls_share: c.mtls_share(),
        in_flight: per_s(c.latency_sum),
    }
}

impl History {
    /// Keeps `capacity` points per key: history length / scrape interval.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(2),
            series: HashMap::new(),
            last: HashMap::new(),
            proxies: Vec::new(),
            endpoint_nodes: HashMap::new(),
            last_t: None,
            last_at: HashMap::new(),
            rates: HashMap::new(),
            instances: HashMap::new(),
        }
    }

    /// Adds one round of scrapes taken at unix time `t`.
    pub fn ingest(&mut self, t: f64, scrapes: &[Scrape]) {
        let dt = self.last_t.map_or(0.0, |l| (t - l).max(0.0));
        self.last_t = Some(t);
        self.proxies = scrapes
            .iter()
            .map(|s| ProxyStatus {
                target: s.target.clone(),
                node: s.node.clone().unwrap_or_else(|| s.target.clone()),
                up: s.up,
                identity: s.identity.clone(),
                inbound: s
                    .samples
                    .iter()
                    .find(|x| x.name == weft_metrics::names::sample::PROXY_INFO)
                    .and_then(|x| x.label(weft_metrics::names::label::INBOUND)?.parse().ok()),
            })
            .collect();
        let mut round: HashMap<Key, Counts> = HashMap::new();
        round.entry(Key::Cluster).or_default();
        for scrape in scrapes.iter().filter(|s| s.up) {
            let deltas = self.deltas(scrape);
            let Some(at) = scrape.at else {
                for (k, c) in deltas {
                    round.entry(k).or_default().add(&c);
                }
                continue;
            };
            // A dated source (Prometheus) refreshes each target on its own schedule: hold
            // each target's rate between its scrapes, as Prometheus' rate() would, and
            // spread it over our rounds.
            match self.last_at.insert(scrape.target.clone(), at) {
                Some(prev) if at > prev => {
                    let per_s = 1.0 / (at - prev);
                    let rates = deltas
                        .into_iter()
                        .map(|(k, mut c)| {
                            c.scale(per_s);
                            (k, c)
                        })
                        .collect();
                    self.rates.insert(scrape.target.clone(), rates);
                }
                _ => {}
            }
            for (k, rate) in self.rates.get(&scrape.target).into_iter().flatten() {
                let mut c = rate.clone();
                c.scale(dt);
                round.entry(k.clone()).or_default().add(&c);
            }
        }
        self.forget_targets(scrapes);
        self.count_instances(t, scrapes);
        if dt == 0.0 {
            return; // the first round only sets baselines
        }
        for (key, counts) in round {
            let ring = self.series.entry(key).or_default();
            ring.push_back(Point { t, dt, counts });
            while ring.len() > self.capacity {
                ring.pop_front();
            }
        }
        self.prune();
    }

    /// Forgets targets no longer scraped (a proxy gone from DNS), and, for each target
    /// scraped now, series it no longer exports (an endpoint retired).
    fn forget_targets(&mut self, scrapes: &[Scrape]) {
        let targets: std::collections::HashSet<&str> =
            scrapes.iter().map(|s| s.target.as_str()).collect();
        self.last.retain(|t, _| targets.contains(t.as_str()));
        self.last_at.retain(|t, _| targets.contains(t.as_str()));
        self.rates.retain(|t, _| targets.contains(t.as_str()));
        for scrape in scrapes.iter().filter(|s| s.up) {
            if let Some(last) = self.last.get_mut(&scrape.target) {
                if last.len() > scrape.samples.len() {
                    let now: std::collections::HashSet<String> =
                        scrape.samples.iter().map(raw_id).collect();
                    last.retain(|id, _| now.contains(id));
                }
            }
        }
    }

    /// Notes each service's endpoints as callers' proxies see them this round.
    fn count_instances(&mut self, t: f64, scrapes: &[Scrape]) {
        let mut now: HashMap<&str, f64> = HashMap::new();
        for s in scrapes
            .iter()
            .filter(|s| s.up)
            .flat_map(|s| &s.samples)
            .filter(|s| s.name == sample::SERVICE_ENDPOINTS)
            .filter(|s| s.label(label::DIRECTION) == Some(Direction::Outbound.as_str()))
        {
            let Some(service) = s.label(label::SERVICE) else {
                continue;
            };
            let n = now.entry(service).or_default();
            *n = n.max(s.value);
        }
        for (service, n) in now {
            let ring = self.instances.entry(service.to_string()).or_default();
            ring.push_back((t, n));
            while ring.len() > self.capacity {
                ring.pop_front();
            }
        }
    }

    /// A service's ready instances as of the latest round, if a caller's proxy reported
    /// them then.
    pub fn instances(&self, service: &str) -> Option<f64> {
        let (t, n) = *self.instances.get(service)?.back()?;
        (Some(t) == self.last_t).then_some(n)
    }

    /// The services whose instances proxies report.
    pub fn instance_services(&self) -> impl Iterator<Item = String> + '_ {
        self.instances.keys().cloned()
    }

    /// When the latest round was taken (unix seconds), once there have been two: the
    /// first only sets baselines.
    pub fn last_round(&self) -> Option<f64> {
        self.last_t
            .filter(|_| self.series.contains_key(&Key::Cluster))
    }

    /// A service's ready instances at each round of the last `span` seconds, oldest first.
    pub fn instances_series(&self, service: &str, span: f64) -> Vec<(f64, f64)> {
        let Some(now) = self.last_t else {
            return Vec::new();
        };
        self.instances
            .get(service)
            .into_iter()
            .flatten()
            .filter(|(t, _)| *t > now - span)
            .copied()
            .collect()
    }

    /// Drops what is older than the history kept: the cluster's ring gets a point every
    /// round, so its oldest is where history starts; a key with nothing since (a service or
    /// endpoint gone) is forgotten, with the node its endpoint was on.
    fn prune(&mut self) {
        let Some(start) = self
            .series
            .get(&Key::Cluster)
            .and_then(|r| r.front())
            .map(|p| p.t)
        else {
            return;
        };
        self.series.retain(|_, ring| {
            while ring.front().is_some_and(|p| p.t < start) {
                ring.pop_front();
            }
            !ring.is_empty()
        });
        let endpoints: std::collections::HashSet<&str> = self
            .series
            .keys()
            .filter_map(|k| match k {
                Key::Endpoint { endpoint, .. } => Some(endpoint.as_str()),
                _ => None,
            })
            .collect();
        self.endpoint_nodes
            .retain(|endpoint, _| endpoints.contains(endpoint.as_str()));
        self.instances.retain(|_, ring| {
            while ring.front().is_some_and(|(t, _)| *t < start) {
                ring.pop_front();
            }
            !ring.is_empty()
        });
    }

    /// What one target counted since its previous samples, per key.
    fn deltas(&mut self, scrape: &Scrape) -> HashMap<Key, Counts> {
        let mut out: HashMap<Key, Counts> = HashMap::new();
        let node = scrape.node.clone().unwrap_or_else(|| scrape.target.clone());
        // The first samples a target gives are a baseline, not traffic.
        let first = self.last.get(&scrape.target).is_none_or(HashMap::is_empty);
        let last = self.last.entry(scrape.target.clone()).or_default();
        for s in &scrape.samples {
            let routes = is_route_sample(&s.name);
            let direction = s.label(label::DIRECTION).unwrap_or("");
            if direction == Direction::Inbound.as_str()
                && s.name == sample::REQUESTS
                && s.value > 0.0
            {
                if let Some(ep) = s.label(label::ENDPOINT).filter(|e| !e.is_empty()) {
                    self.endpoint_nodes.insert(ep.to_string(), node.clone());
                }
            }
            if s.name == sample::SERVICE_ENDPOINTS {
                continue; // a gauge, read as it is (`count_instances`)
            }
            let from_peers = s.name == sample::INBOUND_PEER_REQUESTS;
            if direction != Direction::Outbound.as_str() && !from_peers && !routes {
                continue;
            }
            let id = raw_id(s);
            let prev = last.insert(id, s.value);
            let delta = match prev {
                Some(p) if s.value >= p => s.value - p,
                Some(_) => s.value, // the proxy restarted; its counters began again
                None if first => 0.0, // a baseline, not traffic
                None => s.value,    // a series born since the last scrape
            };
            if delta == 0.0 {
                continue;
            }
            if routes {
                for (key, c) in route_counts(s, delta) {
                    out.entry(key).or_default().add(&c);
                }
                continue;
            }
            let mut c = Counts::default();
            match s.name.as_str() {
                sample::REQUESTS => c.requests = delta,
                sample::RESPONSES => {
                    if s.label(label::CLASSIFICATION) == Some(Classification::Success.as_str()) {
                        c.success = delta;
                    } else {
                        c.failure = delta;
                    }
                    match s
                        .label(label::STATUS_CODE)
                        .and_then(|v| v.as_bytes().first())
                    {
                        Some(b'4') => c.c4xx = delta,
                        Some(b'5') => c.c5xx = delta,
                        _ => {}
                    }
                }
                sample::LATENCY_BUCKET => {
                    let Some(i) = s.label(label::LE).and_then(bucket_index) else {
                        continue;
                    };
                    c.buckets = vec![0.0; LATENCY_BUCKETS.len() + 1];
                    c.buckets[i] = delta;
                }
                sample::LATENCY_SUM => c.latency_sum = delta,
                sample::INBOUND_PEER_REQUESTS => {
                    if s.label(label::TLS) == Some("mutual") {
                        c.peer_mtls = delta;
                    } else {
                        c.peer_plain = delta;
                    }
                }
                sample::ATTEMPTS => {
                    if s.label(label::CLASSIFICATION) == Some(Classification::Success.as_str()) {
                        c.attempts_ok = delta;
                    } else {
                        c.attempts_failed = delta;
                    }
                }
                sample::RETRIES | sample::ENDPOINT_RETRIES => c.retries = delta,
                sample::BUDGET_EXHAUSTED | sample::ENDPOINT_BUDGET_EXHAUSTED => {
                    c.budget_refused = delta
                }
                _ => continue,
            }
            let service = s.label(label::SERVICE).unwrap_or("");
            let endpoint = s.label(label::ENDPOINT).unwrap_or("");
            // An endpoint's retries are also its service's, which the per-service families
            // count for the cluster, nodes and services: only the endpoint takes these.
            let endpoint_only = matches!(
                s.name.as_str(),
                sample::ENDPOINT_RETRIES | sample::ENDPOINT_BUDGET_EXHAUSTED
            );
            let mut keys = Vec::with_capacity(4);
            if !endpoint_only {
                keys.extend([Key::Cluster, Key::Node(node.clone())]);
            }
            if !service.is_empty() && service != UNKNOWN_SERVICE {
                if !endpoint_only {
                    keys.push(Key::Service(service.to_string()));
                }
                if !endpoint.is_empty() {
                    keys.push(Key::Endpoint {
                        service: service.to_string(),
                        endpoint: endpoint.to_string(),
                    });
                }
            }
            for k in keys {
                out.entry(k).or_default().add(&c);
            }
        }
        out
    }

    pub fn proxies(&self) -> &[ProxyStatus] {
        &self.proxies
    }

    pub fn endpoint_node(&self, endpoint: &str) -> Option<&str> {
        self.endpoint_nodes.get(endpoint).map(String::as_str)
    }

    pub fn keys(&self) -> Vec<Key> {
        let mut k: Vec<_> = self.series.keys().cloned().collect();
        k.sort();
        k
    }

    /// Figures over the last `window` seconds, of every key `keep` takes, added up.
    /// Retry figures are left out unless every key taken has them.
    pub fn stats_of_all(&self, keep: impl Fn(&Key) -> bool, window: f64) -> Stats {
        let taken: Vec<_> = self.series.iter().filter(|(k, _)| keep(k)).collect();
        let retries = taken.iter().all(|(k, _)| k.has_retries());
        self.window_stats(taken.into_iter().map(|(_, r)| r), window, retries)
    }

    /// Figures over the last `window` seconds. A rate is over the time the window covers,
    /// not only the rounds this key had traffic in: a quiet stretch lowers it.
    pub fn stats(&self, key: &Key, window: f64) -> Stats {
        self.window_stats(self.series.get(key).into_iter(), window, key.has_retries())
    }

    /// A service's figures: what its callers saw (through its routes' rules, when it has
    /// routes), every attempt sent for it, and its retries, counted under its own name
    /// where its backends' endpoints count the rest under theirs.
    pub fn service_stats(&self, service: &str, window: f64) -> Stats {
        let own = Key::Service(service.to_string());
        let of_routes = |k: &Key| matches!(k, Key::Route { service: s, .. } if s == service);
        if !self.series.keys().any(of_routes) {
            return self.stats(&own, window);
        }
        let own = self.stats(&own, window);
        Stats {
            retry_rps: own.retry_rps,
            budget_refusals: own.budget_refusals,
            ..self.stats_of_all(of_routes, window)
        }
    }

    /// The points of `rings` within the last `window` seconds, added up, over the time the
    /// window covers: the cluster's ring has a point every round, where a key that had no
    /// traffic lately has none.
    fn window_stats<'a>(
        &'a self,
        rings: impl Iterator<Item = &'a VecDeque<Point>>,
        window: f64,
        retries: bool,
    ) -> Stats {
        let Some(now) = self.last_t else {
            return stats_of(&Counts::default(), 0.0, retries);
        };
        let recent = |ring: &'a VecDeque<Point>| {
            ring.iter()
                .rev()
                .take_while(move |p| p.t > now - window - 1e-6)
        };
        let mut total = Counts::default();
        let mut seconds: f64 = 0.0;
        for ring in rings {
            let mut secs = 0.0;
            for p in recent(ring) {
                total.add(&p.counts);
                secs += p.dt;
            }
            seconds = seconds.max(secs);
        }
        let covered = self
            .series
            .get(&Key::Cluster)
            .map_or(0.0, |ring| recent(ring).map(|p| p.dt).sum());
        stats_of(&total, seconds.max(covered), retries)
    }

    /// Points of `step` seconds over the last `span` seconds, oldest first, of every key
    /// `keep` takes, added up; each bin's time is the cluster's, so a quiet key reads 0.
    pub fn series_of_all(
        &self,
        keep: impl Fn(&Key) -> bool,
        span: f64,
        step: f64,
    ) -> Vec<SeriesPoint> {
        let (Some(now), Some(cluster)) = (self.last_t, self.series.get(&Key::Cluster)) else {
            return Vec::new();
        };
        let step = step.max(1.0);
        let start = now - span;
        // Bins by their end, in milliseconds: (counts, seconds).
        let mut bins: std::collections::BTreeMap<i64, (Counts, f64)> = Default::default();
        let at = |t: f64| (bin_end(now, t, step) * 1000.0).round() as i64;
        for p in cluster.iter().filter(|p| p.t > start) {
            bins.entry(at(p.t)).or_default().1 += p.dt;
        }
        for (_, ring) in self.series.iter().filter(|(k, _)| keep(k)) {
            for p in ring.iter().filter(|p| p.t > start) {
                bins.entry(at(p.t)).or_default().0.add(&p.counts);
            }
        }
        bins.into_iter()
            .map(|(t, (c, secs))| point(t as f64 / 1000.0, &c, secs))
            .collect()
    }

    /// Points of `step` seconds over the last `span` seconds, oldest first.
    pub fn series(&self, key: &Key, span: f64, step: f64) -> Vec<SeriesPoint> {
        let (Some(now), Some(ring)) = (self.last_t, self.series.get(key)) else {
            return Vec::new();
        };
        let step = step.max(1.0);
        let start = now - span;
        let mut bins: Vec<(f64, Counts, f64)> = Vec::new();
        for p in ring.iter().filter(|p| p.t > start) {
            let bin_end = bin_end(now, p.t, step);
            match bins.last_mut() {
                Some((t, c, secs)) if (*t - bin_end).abs() < 1e-6 => {
                    c.add(&p.counts);
                    *secs += p.dt;
                }
                _ => bins.push((bin_end, p.counts.clone(), p.dt)),
            }
        }
        bins.into_iter()
            .map(|(t, c, secs)| point(t, &c, secs))
            .collect()
    }
}

fn is_route_sample(name: &str) -> bool {
    matches!(
        name,
        sample::ROUTE_REQUESTS
            | sample::ROUTE_RESPONSES
            | sample::ROUTE_LATENCY_BUCKET
            | sample::ROUTE_BACKEND_ATTEMPTS
            | sample::ROUTE_BACKEND_LATENCY_BUCKET
    )
}

/// A route family's sample as counts of its rule or of one of its backends. These keys are
/// views of their own: the cluster's, services' and endpoints' figures come from the
/// request families alone, so nothing is counted twice. A backend's attempt is also one of
/// its rule's attempts, so the rule's actual success rate sits beside what callers saw.
fn route_counts(s: &weft_metrics::parse::Sample, delta: f64) -> Vec<(Key, Counts)> {
    let (Some(service), Some(route)) = (s.label(label::SERVICE), s.label(label::ROUTE)) else {
        return Vec::new();
    };
    let rule = Key::Route {
        service: service.to_string(),
        route: route.to_string(),
    };
    let success = s.label(label::CLASSIFICATION) == Some(Classification::Success.as_str());
    let mut c = Counts::default();
    let bucket = |c: &mut Counts| -> Option<()> {
        let i = s.label(label::LE).and_then(bucket_index)?;
        c.buckets = vec![0.0; LATENCY_BUCKETS.len() + 1];
        c.buckets[i] = delta;
        Some(())
    };
    let backend = |b: &str| Key::Backend {
        service: service.to_string(),
        route: route.to_string(),
        backend: b.to_string(),
    };
    match s.name.as_str() {
        sample::ROUTE_REQUESTS => {
            c.requests = delta;
            vec![(rule, c)]
        }
        sample::ROUTE_RESPONSES => {
            if success {
                c.success = delta;
            } else {
                c.failure = delta;
            }
            vec![(rule, c)]
        }
        sample::ROUTE_LATENCY_BUCKET => match bucket(&mut c) {
            Some(()) => vec![(rule, c)],
            None => Vec::new(),
        },
        sample::ROUTE_BACKEND_ATTEMPTS => {
            let Some(b) = s.label(label::BACKEND) else {
                return Vec::new();
            };
            let mut attempts = Counts::default();
            if success {
                attempts.attempts_ok = delta;
            } else {
                attempts.attempts_failed = delta;
            }
            // Of a backend, attempts are its requests: it sees nothing else.
            let mut c = attempts.clone();
            c.requests = delta;
            c.success = attempts.attempts_ok;
            c.failure = attempts.attempts_failed;
            vec![(backend(b), c), (rule, attempts)]
        }
        _ => match (s.label(label::BACKEND), bucket(&mut c)) {
            (Some(b), Some(())) => vec![(backend(b), c)],
            _ => Vec::new(),
        },
    }
}

/// One bin of a series: its counts over `secs` seconds, ending at `t`.
fn point(t: f64, c: &Counts, secs: f64) -> SeriesPoint {
    let s = stats_of(c, secs, false);
    SeriesPoint {
        t,
        rps: s.rps,
        success_rate: s.success_rate,
        actual_success_rate: s.actual_success_rate,
        p50_ms: s.p50_ms,
        p95_ms: s.p95_ms,
        p99_ms: s.p99_ms,
    }
}

/// The bin a point at `t` falls in: bins of `step` seconds ending at `now`.
fn bin_end(now: f64, t: f64, step: f64) -> f64 {
    now - ((now - t) / step).floor() * step
}

/// A series' identity; labels sorted, since sources (Prometheus' JSON) do not fix their order.
fn raw_id(s: &weft_metrics::parse::Sample) -> String {
    let mut labels: Vec<_> = s.labels.iter().collect();
    labels.sort();
    let mut id = s.name.clone();
    for (k, v) in labels {
        id.push('\u{1}');
        id.push_str(k);
        id.push('=');
        id.push_str(v);
    }
    id
}

fn bucket_index(le: &str) -> Option<usize> {
    if le == "+Inf" {
        return Some(LATENCY_BUCKETS.len());
    }
    let v: f64 = le.parse().ok()?;
    LATENCY_BUCKETS.iter().position(|b| (b - v).abs() < 1e-9)
}

#[cfg(test)]
mod tests;
