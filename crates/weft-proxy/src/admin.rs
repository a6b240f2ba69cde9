//! The admin listener: health and metrics for the node network; the effective config,
//! current endpoints and shutdown for loopback only. It is served by the same machinery as the data plane.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio::sync::watch;
use weft_core::tap::TAP_PATH;
use weft_discovery::Discover;
use weft_metrics::Metrics;

use weft_http::ClientBody;

use crate::body::ProxyBody;
use crate::identity::MeshIdentity;
use crate::resilience::accrual::Shown;
use crate::shared::Shared;

pub(crate) struct Admin {
    pub shared: Arc<Shared>,
    /// With identity on, the proxy is not ready without a valid leaf.
    pub identity: Option<MeshIdentity>,
    pub discovery: Arc<dyn Discover>,
    pub metrics: Arc<Metrics>,
    pub ready: AtomicBool,
    pub shutdown: watch::Sender<bool>,
    /// `/metrics` answers so far: a draining proxy waits for one after its last request.
    pub scrapes: Arc<AtomicU64>,
}

impl Admin {
    pub(crate) async fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        req: Request<ClientBody>,
    ) -> Response<ProxyBody> {
        if !allowed(peer, req.uri().path()) {
            let mut rsp = text(
                StatusCode::FORBIDDEN,
                "this path is served to loopback only (kubectl port-forward reaches it)\n",
            );
            rsp.headers_mut().insert(
                weft_core::headers::WEFT_ERROR,
                HeaderValue::from_static("permission denied"),
            );
            return rsp;
        }
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/live") => text(StatusCode::OK, "live\n"),
            (&Method::GET, "/ready") => {
                let why = if *self.shutdown.borrow() {
                    Some("draining".to_string())
                } else if !self.ready.load(Ordering::Acquire) {
                    Some("starting".to_string())
                } else {
                    self.identity.as_ref().and_then(MeshIdentity::not_ready)
                };
                match why {
                    None => text(StatusCode::OK, "ready\n"),
                    Some(why) => text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {why}\n"),
                    ),
                }
            }
            (&Method::GET, "/metrics") => {
                // Counted before it is rendered: a scrape counted after the drain's last
                // request holds that request's counts.
                self.scrapes.fetch_add(1, Ordering::AcqRel);
                if let Some(id) = &self.identity {
                    id.observe(&self.metrics.identity);
                }
                let openmetrics = req
                    .headers()
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|a| a.contains("application/openmetrics-text"));
                let (body, kind) = if openmetrics {
                    (
                        self.metrics.render_openmetrics(),
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )
                } else {
                    (
                        self.metrics.render_text(),
                        "text/plain; version=0.0.4; charset=utf-8",
                    )
                };
                let mut rsp = Response::new(ProxyBody::full(body));
                rsp.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
                rsp
            }
            (&Method::GET, "/config") => {
                let mut config = serde_json::to_value(&self.shared.config).unwrap_or_default();
                // The policies in force: defaults, the file, and its last good reload.
                let policies =
                    serde_json::to_value(&self.shared.policies.load().source).unwrap_or_default();
                if let Some(obj) = config.as_object_mut() {
                    obj.insert("policies".into(), policies);
                }
                json_response(&config)
            }
            (&Method::GET, "/endpoints") => json_response(&self.endpoints()),
            (&Method::GET, "/routes") => json_response(&self.routes()),
            (&Method::GET, TAP_PATH) => {
                crate::tap::subscription(&self.shared.taps, req.uri().query().unwrap_or(""))
            }
            (&Method::POST, "/shutdown") => {
                tracing::info!(%peer, "shutdown requested through the admin API");
                self.shutdown.send_replace(true);
                text(StatusCode::ACCEPTED, "draining\n")
            }
            (
                _,
                "/live" | "/ready" | "/metrics" | "/config" | "/endpoints" | "/routes" | "/tap"
                | "/shutdown",
            ) => {
                text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found; try /live /ready /metrics /config /endpoints /routes /tap, or POST /shutdown\n",
            ),
        }
    }

    /// The routes of each service the outbound side has sent requests to, as it applies
    /// them now.
    fn routes(&self) -> serde_json::Value {
        let services: serde_json::Map<String, serde_json::Value> = self
            .shared
            .outbound
            .all()
            .into_iter()
            .filter_map(|s| {
                let table = s.routes()?;
                let rules = serde_json::to_value(table.routes().rules()).ok()?;
                Some((s.name.to_string(), json!({ "routes": rules })))
            })
            .collect();
        json!({ "services": services })
    }

    /// Each service discovery knows, its endpoints, and how the outbound side sees them.
    fn endpoints(&self) -> serde_json::Value {
        let routed: std::collections::HashMap<_, _> = self
            .shared
            .outbound
            .all()
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        let mut services = serde_json::Map::new();
        for (name, set) in self.discovery.snapshot() {
            let states = routed.get(&name).map(|s| s.endpoints());
            let eps: Vec<_> = set
                .iter()
                .map(|ep| {
                    let state = states
                        .as_ref()
                        .and_then(|st| st.list.iter().find(|s| s.endpoint.addr == ep.addr));
                    let outstanding = state.map_or(0, |s| s.outstanding());
                    let shown = state.map_or("ready", |s| match s.accrual.shown() {
                        Shown::Ready => "ready",
                        Shown::Open => "open",
                        Shown::Probing => "probing",
                    });
                    let decay = self
                        .shared
                        .policies
                        .load()
                        .get(name.as_str())
                        .policy
                        .balancer
                        .decay;
                    let ewma_ms =
                        state.map(|s| s.ewma.estimate(std::time::Instant::now(), decay) * 1000.0);
                    json!({
                        "addr": ep.addr.to_string(),
                        "node": ep.node_proxy.map(|a| a.to_string()),
                        "local": ep.node_proxy == Some(self.shared.advertise),
                        "protocol": ep.protocol,
                        "weight": ep.weight,
                        "labels": ep.labels,
                        "state": shown,
                        "outstanding": outstanding,
                        "latency_ewma_ms": ewma_ms,
                        "tls": self.peer_tls(ep),
                    })
                })
                .collect();
            let ports = set.ports();
            services.insert(
                name.to_string(),
                json!({ "ports": ports, "endpoints": eps }),
            );
        }
        json!({ "services": services })
    }
}

impl Admin {
    /// How requests reach `ep` through its node's proxy (this node's own included): mutual
    /// TLS, with the identity that proxy must have when discovery names its node; `null`
    /// for an endpoint reached directly.
    fn peer_tls(&self, ep: &weft_core::Endpoint) -> serde_json::Value {
        if ep.node_proxy.is_none() {
            return serde_json::Value::Null;
        }
        match &self.shared.identity {
            None => json!({ "mode": "plaintext" }),
            Some(own) => {
                let expected = ep
                    .labels
                    .get(crate::balancer::NODE_LABEL)
                    .and_then(|n| own.on_node(n).ok())
                    .map(|id| id.to_string());
                json!({ "mode": "mutual", "identity": expected })
            }
        }
    }
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<ProxyBody> {
    let mut rsp = Response::new(ProxyBody::full(body));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    rsp
}

fn json_response(v: &serde_json::Value) -> Response<ProxyBody> {
    let body = serde_json::to_vec_pretty(v).unwrap_or_default();
    let mut rsp = Response::new(ProxyBody::full(body));
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    rsp
}

/// Probes and metrics are for the node network (kubelet, Prometheus); what reveals the
/// mesh's layout or stops the proxy is for someone on the node itself.
fn allowed(peer: SocketAddr, path: &str) -> bool {
    peer.ip().is_loopback() || matches!(path, "/live" | "/ready" | "/metrics")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_probes_and_metrics_are_served_beyond_loopback() {
        let node: SocketAddr = "10.0.0.7:5000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        for path in ["/live", "/ready", "/metrics"] {
            assert!(allowed(node, path) && allowed(local, path), "{path}");
        }
        for path in [
            "/config",
            "/endpoints",
            "/routes",
            "/tap",
            "/shutdown",
            "/nope",
        ] {
            assert!(!allowed(node, path) && allowed(local, path), "{path}");
        }
    }
}
