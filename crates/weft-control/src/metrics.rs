//! The control plane's own metrics, served on its admin port beside /ready and /live.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::index::Answers;

type Labels = Vec<(&'static str, &'static str)>;

pub struct Metrics {
    registry: Registry,
    /// Kubernetes watch events applied, by resource.
    pub kube_events: Family<Labels, Counter>,
    /// Watch errors (the API server down, a dropped or expired watch), by resource.
    pub kube_errors: Family<Labels, Counter>,
    /// Destination streams open now.
    pub streams: Gauge,
    /// Destination streams refused because the cap on open ones was reached.
    pub streams_refused: Counter,
    /// Destination updates sent, by kind (snapshot, add, remove, no_endpoints, does_not_exist,
    /// and routes: a service's routes, whole).
    pub updates: Family<Labels, Counter>,
    /// Certify requests, by result (signed, unauthenticated, wrong_identity, bad_request, error).
    pub certify: Family<Labels, Counter>,
    /// When each certificate the control plane holds expires (anchor, issuer, control).
    expiry: Family<Labels, Gauge>,
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
        let streams_refused = Counter::default();
        let updates = Family::<Labels, Counter>::default();
        let services = Gauge::default();
        let subscribed = Gauge::default();
        let synced = Gauge::default();
        let certify = Family::<Labels, Counter>::default();
        let expiry = Family::<Labels, Gauge>::default();
        registry.register(
            "identity_certify_requests",
            "Identity API certify requests, by result",
            certify.clone(),
        );
        registry.register(
            "identity_certificate_expiry_timestamp_seconds",
            "When each certificate the control plane holds expires (the soonest of a kind)",
            expiry.clone(),
        );
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
            "destination_streams_refused",
            "Destination API streams refused: the control plane had --max-streams open",
            streams_refused.clone(),
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
            streams_refused,
            updates,
            services,
            subscribed,
            synced,
            certify,
            expiry,
        }
    }
}

impl Metrics {
    pub fn render(
        &self,
        answers: &dyn Answers,
        signer: Option<&crate::identity::signer::Signer>,
    ) -> String {
        self.services.set(answers.known_services() as i64);
        self.subscribed.set(answers.subscribed() as i64);
        self.synced.set(i64::from(answers.is_synced()));
        // The soonest of each kind: what a warning must look at.
        let mut soonest: Vec<(&'static str, std::time::SystemTime)> = Vec::new();
        for (kind, at) in signer.map(|s| s.expiries()).unwrap_or_default() {
            match soonest.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, t)) => *t = (*t).min(at),
                None => soonest.push((kind, at)),
            }
        }
        for (kind, at) in soonest {
            let secs = at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            self.expiry
                .get_or_create(&vec![("certificate", kind)])
                .set(secs);
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
