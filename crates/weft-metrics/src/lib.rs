//! weft's metric families and their Prometheus text exposition.
//!
//! Layout:
//! - [`http`]: request, response and latency families for the outbound and inbound sides,
//!   and per-route handles that the data plane resolves once, not per request.
//! - [`tcp`]: open connections, accepted connections and bytes per listener.
//! - [`Metrics`]: the registry that holds them all and renders `/metrics`.
#![forbid(unsafe_code)]

pub mod http;
pub mod tcp;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub use crate::http::{Classification, Direction, HttpMetrics, RouteMetrics};
pub use crate::tcp::TcpMetrics;

/// Every metric one proxy exports.
pub struct Metrics {
    registry: Registry,
    pub http: HttpMetrics,
    pub tcp: TcpMetrics,
    /// Discovery updates rejected (bad file edits and the like).
    pub discovery_errors: Counter,
}

impl Metrics {
    pub fn new(node: &str) -> Self {
        let mut registry = Registry::with_prefix("weft");
        registry.register(
            "proxy",
            "This proxy's node and version",
            Info::new(vec![
                ("node".to_string(), node.to_string()),
                ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
            ]),
        );
        let http = HttpMetrics::register(&mut registry);
        let tcp = TcpMetrics::register(&mut registry);
        let discovery_errors = Counter::default();
        registry.register(
            "discovery_errors",
            "Discovery updates rejected as invalid; the last good state stays in force",
            discovery_errors.clone(),
        );
        Self {
            registry,
            http,
            tcp,
            discovery_errors,
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
