//! weft's metric families and their Prometheus text exposition.
//!
//! Layout:
//! - [`http`]: request, response and latency families for the outbound and inbound sides,
//!   and per-route handles that the data plane resolves once, not per request.
//! - [`routes`]: per route of a service, and per backend of a route (traffic splits).
//! - [`tcp`]: open connections, accepted connections and bytes per listener.
//! - [`tunnel`]: `CONNECT` tunnels per service, and the relayed ones' bytes and duration.
//! - [`context`]: `weft-ctx-*` headers dropped from sources that may not set them.
//! - [`trace`]: spans exported, and dropped on the way to the collector.
//! - [`names`]: family and label names, for the registry and for readers of the text.
//! - [`parse`]: reads the text format back, for the dashboard.
//! - [`Metrics`]: the registry that holds them all and renders `/metrics`.
//! - [`serve`] (feature `serve`): the bounded HTTP/1.1 server the dashboard and the control
//!   plane's admin listener use.
#![forbid(unsafe_code)]

pub mod context;
pub mod http;
pub mod names;
pub mod parse;
pub mod peers;
pub mod routes;
#[cfg(feature = "serve")]
pub mod serve;
pub mod tcp;
pub mod trace;
pub mod tunnel;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use prometheus_client::registry::Registry;

pub use crate::context::ContextMetrics;
pub use crate::http::{Classification, Direction, HttpMetrics, RouteMetrics, ServiceCounters};
pub use crate::names::UNKNOWN_SERVICE;
use crate::names::{family, label};
pub use crate::peers::PeerMetrics;
pub use crate::routes::{BackendMetrics, RouteFamilies, RuleMetrics};
pub use crate::tcp::TcpMetrics;
pub use crate::trace::TraceMetrics;
pub use crate::tunnel::{Carried, Relay, TunnelMetrics};
pub use prometheus_client::metrics::gauge::Gauge;

/// Every metric one proxy exports.
pub struct Metrics {
    registry: Registry,
    pub http: HttpMetrics,
    pub routes: RouteFamilies,
    pub tcp: TcpMetrics,
    pub tunnels: TunnelMetrics,
    pub peers: PeerMetrics,
    pub context: ContextMetrics,
    pub trace: TraceMetrics,
    /// Discovery updates rejected (bad file edits and the like).
    pub discovery_errors: Counter,
    /// Tap subscribers now.
    pub tap_subscribers: Gauge,
    /// Config reloads rejected; the running config stays.
    pub config_errors: Counter,
    pub identity: IdentityMetrics,
    /// `weft_proxy_info`'s one series: node and version, and the inbound address once bound.
    info: Family<Vec<(String, String)>, Gauge>,
    info_labels: Vec<(String, String)>,
}

/// A proxy's (or the dashboard's) own certificates, set at each scrape from what it holds.
#[derive(Clone, Default)]
pub struct IdentityMetrics {
    /// The proxy's mesh identity, as a label of a gauge at 1 (the dashboard shows it).
    pub info: Family<Vec<(String, String)>, Gauge>,
    /// When the leaf it presents expires (0: none yet).
    pub leaf_expiry: Gauge,
    /// Anchors in its trust bundle now.
    pub anchors: Gauge,
    /// When the soonest-expiring anchor expires.
    pub anchor_expiry: Gauge,
    /// Leaves got from the control plane, and attempts that failed.
    pub certified: Counter,
    pub certify_failures: Counter,
}

impl IdentityMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let identity = Self::default();
        registry.register(
            family::IDENTITY_INFO,
            "This component's mesh identity (present with identity on)",
            identity.info.clone(),
        );
        registry.register(
            "identity_leaf_expiry_timestamp_seconds",
            "When this component's leaf certificate expires (0 before it has one)",
            identity.leaf_expiry.clone(),
        );
        registry.register(
            "identity_trust_anchors",
            "Trust anchors in this component's bundle",
            identity.anchors.clone(),
        );
        registry.register(
            "identity_anchor_expiry_timestamp_seconds",
            "When the soonest-expiring trust anchor expires",
            identity.anchor_expiry.clone(),
        );
        registry.register(
            "identity_certified",
            "Leaf certificates got from the control plane",
            identity.certified.clone(),
        );
        registry.register(
            "identity_certify_failures",
            "Requests for a leaf certificate that failed (retried with backoff)",
            identity.certify_failures.clone(),
        );
        identity
    }
}

/// The identity families alone, for a component that exports nothing else of the proxy's
/// (the dashboard): `weft check` reads its leaf as it reads a proxy's.
pub struct IdentityOnly {
    registry: Registry,
    pub identity: IdentityMetrics,
}

impl Default for IdentityOnly {
    fn default() -> Self {
        let mut registry = Registry::with_prefix(names::PREFIX);
        let identity = IdentityMetrics::register(&mut registry);
        Self { registry, identity }
    }
}

impl IdentityOnly {
    /// The classic Prometheus text format.
    pub fn render_text(&self) -> String {
        let mut out = String::with_capacity(2048);
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        openmetrics_to_text(&out)
    }
}

impl Metrics {
    pub fn new(node: &str) -> Self {
        let mut registry = Registry::with_prefix(names::PREFIX);
        // A gauge, not an OpenMetrics info: Prometheus' own text parser (promtool) knows
        // no info type.
        let info = Family::<Vec<(String, String)>, Gauge>::default();
        let info_labels = vec![
            (label::NODE.to_string(), node.to_string()),
            (
                label::VERSION.to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
        ];
        info.get_or_create(&info_labels).set(1);
        registry.register(
            family::PROXY_INFO,
            "This proxy's node, version and inbound address",
            info.clone(),
        );
        let http = HttpMetrics::register(&mut registry);
        let routes = RouteFamilies::register(&mut registry);
        let tcp = TcpMetrics::register(&mut registry);
        let tunnels = TunnelMetrics::register(&mut registry);
        let peers = PeerMetrics::register(&mut registry);
        let context = ContextMetrics::register(&mut registry);
        let trace = TraceMetrics::register(&mut registry);
        let tap_subscribers = Gauge::default();
        registry.register(
            "tap_subscribers",
            "Tap subscribers now (the node's operators, the dashboard)",
            tap_subscribers.clone(),
        );
        let discovery_errors = Counter::default();
        registry.register(
            "discovery_errors",
            "Discovery updates rejected as invalid; the last good state stays in force",
            discovery_errors.clone(),
        );
        let config_errors = Counter::default();
        registry.register(
            "config_errors",
            "Config file reloads rejected as invalid; the running config stays in force",
            config_errors.clone(),
        );
        let identity = IdentityMetrics::register(&mut registry);
        Self {
            registry,
            http,
            routes,
            tcp,
            tunnels,
            peers,
            context,
            trace,
            discovery_errors,
            tap_subscribers,
            config_errors,
            identity,
            info,
            info_labels,
        }
    }

    /// Names the inbound listener peers reach, once it is bound: the dashboard taps there.
    pub fn advertise_inbound(&self, inbound: std::net::SocketAddr) {
        let mut labels = self.info_labels.clone();
        labels.push((label::INBOUND.to_string(), inbound.to_string()));
        self.info.clear();
        self.info.get_or_create(&labels).set(1);
    }

    /// The OpenMetrics exposition of every family.
    pub fn render_openmetrics(&self) -> String {
        self.http.prune();
        self.routes.prune();
        let mut out = String::with_capacity(16 * 1024);
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// The classic Prometheus text format (0.0.4), for scrapers and tools that do not ask
    /// for OpenMetrics (promtool, older Prometheus, curl).
    pub fn render_text(&self) -> String {
        openmetrics_to_text(&self.render_openmetrics())
    }
}

/// OpenMetrics names a counter family without `_total` in HELP and TYPE; the text format
/// names it as its samples are named, and has no `# EOF`, `# UNIT` or exemplars.
pub fn openmetrics_to_text(om: &str) -> String {
    let counters: std::collections::HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len() + 256);
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{kind}{name}{suffix} {tail}"));
            }
            None => match line.split_once(parse::EXEMPLAR) {
                Some((sample, _)) if !line.starts_with('#') => out.push_str(sample),
                _ => out.push_str(line),
            },
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_names_counters_as_their_samples() {
        let m = Metrics::new("n");
        m.discovery_errors.inc();
        let text = m.render_text();
        assert!(
            text.contains("# TYPE weft_discovery_errors_total counter"),
            "{text}"
        );
        assert!(text.contains("weft_discovery_errors_total 1"), "{text}");
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn a_retired_rule_is_rendered_once_more_unless_made_again() {
        let m = Metrics::new("n");
        let old = m.routes.rule("world", "split", &["world-v1", "world-v2"]);
        old.request(std::time::Duration::from_millis(2));
        old.backends[1].attempt(Classification::Failure, std::time::Duration::from_millis(1));
        let kept = m.routes.rule("world", "split", &["world-v1"]);
        m.routes.retire(old);
        let first = m.render_text();
        assert!(first.contains("backend=\"world-v2\""), "{first}");
        let second = m.render_text();
        assert!(!second.contains("backend=\"world-v2\""), "{second}");
        assert!(
            second.contains("weft_route_requests_total{service=\"world\",route=\"split\"} 1"),
            "{second}"
        );
        drop(kept);
    }

    #[test]
    fn a_retired_route_is_rendered_once_more_then_gone_and_stays_gone() {
        let m = Metrics::new("n");
        let route = m.http.route(Direction::Outbound, "world", "10.0.0.9:80");
        route.request();
        route.response(200, Classification::Success, "");
        route.retried();
        m.http.retire(&route);
        let last = m.render_text();
        assert!(last.contains(
            "weft_endpoint_retries_total{direction=\"outbound\",service=\"world\",endpoint=\"10.0.0.9:80\"} 1"
        ), "{last}");
        assert!(!m.render_text().contains("endpoint=\"10.0.0.9:80\""));
        // A request still in flight on the old handle, with an answer not seen before.
        route.response(503, Classification::Failure, "");
        route.retry_refused();
        assert!(!m.render_text().contains("endpoint=\"10.0.0.9:80\""));
        // Back again: a new handle counts afresh.
        let back = m.http.route(Direction::Outbound, "world", "10.0.0.9:80");
        back.request();
        assert!(m
            .render_text()
            .contains("weft_requests_total{direction=\"outbound\",service=\"world\",endpoint=\"10.0.0.9:80\"} 1"));
    }
}
