//! The control plane's own metrics, served on its admin port beside /ready and /live.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

pub struct Metrics {
    registry: Registry,
    /// Kubernetes watch events applied, by resource.
    pub kube_events: Family<Labels, Counter>,
    /// Watch errors (the API server down, a dropped or expired watch), by resource.
    pub kube_errors: Family<Labels, Counter>,
    /// Destination streams open now.
    pub streams: Gauge,
    /// Destination updates sent, by kind (snapshot, add, remove, no_endpoints, does_not_exist).
    pub updates: Family<Labels, Counter>,
    services: Gauge,
    subscribed: Gauge,
    synced: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("weft_control");
        let kube_events = Family::<Labels, Counter>::default();
        let kube_errors = Family::<Labels, Counter>::default();
        let streams = Gauge::default();
        let updates = Family::<Labels, Counter>::default();
        let services = Gauge::default();
        let subscribed = Gauge::default();
        let synced = Gauge::default();
        registry.register(
            "kube_events",
            "Kubernetes watch events applied",
            kube_events.clone(),
        );
        registry.register(
            "kube_watch_errors",
            "Kubernetes list/watch errors (retried with backoff)",
            kube_errors.clone(),
        );
        registry.register(
            "destination_streams",
            "Destination API streams open",
            streams.clone(),
        );
        registry.register(
            "destination_updates",
            "Destination API updates sent",
            updates.clone(),
        );
        registry.register("services", "Kubernetes services known", services.clone());
        registry.register(
            "subscribed_services",
            "Services at least one stream follows",
            subscribed.clone(),
        );
        registry.register(
            "synced",
            "1 once every watched resource has been listed",
            synced.clone(),
        );
        Self {
            registry,
            kube_events,
            kube_errors,
            streams,
            updates,
            services,
            subscribed,
            synced,
        }
    }
}

impl Metrics {
    pub fn render(&self, index: &crate::index::Index) -> String {
        self.services.set(index.known_services() as i64);
        self.subscribed.set(index.subscribed() as i64);
        self.synced.set(i64::from(index.is_synced()));
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
