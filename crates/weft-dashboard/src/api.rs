//! The dashboard's HTTP routes: a JSON API (summary, services, instances) and the web UI's
//! assets, embedded in the binary so it works offline.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::history::{Key, SeriesPoint, Stats};
use crate::Shared;

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const STYLE_CSS: &str = include_str!("ui/style.css");

/// Shown above every chart: fifteen minutes.
const SERIES_SPAN: f64 = 900.0;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/api/summary", get(summary))
        .route("/api/services", get(services))
        .route("/api/instances", get(instances))
        .route("/api/routes", get(routes))
        .route("/api/traces", get(traces))
        .route("/metrics", get(own_metrics))
        .with_state(shared)
}

/// No script but the dashboard's own file runs, whatever a label value carries.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; \
                   base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

pub(crate) fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The API's one error type: handlers use `?`; clients get a JSON message.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

#[derive(Deserialize, Default)]
pub struct Params {
    window: Option<String>,
    step: Option<String>,
    service: Option<String>,
    instance: Option<String>,
}

impl Params {
    fn seconds(v: &Option<String>, default: f64) -> Result<f64, AppError> {
        let Some(v) = v.as_deref().filter(|v| !v.is_empty()) else {
            return Ok(default);
        };
        parse_seconds(v).ok_or_else(|| AppError::BadRequest(format!("invalid duration {v:?}")))
    }

    fn window(&self) -> Result<f64, AppError> {
        Self::seconds(&self.window, 60.0)
    }

    fn step(&self, interval: f64) -> Result<f64, AppError> {
        Ok(Self::seconds(&self.step, 5.0)?.max(interval))
    }

    /// The window figures cover and the step series use, in seconds.
    fn spans(&self, interval: f64) -> Result<(f64, f64), AppError> {
        Ok((self.window()?, self.step(interval)?))
    }

    fn wants(filter: &Option<String>, value: &str) -> bool {
        filter.as_deref().is_none_or(|f| f.is_empty() || f == value)
    }
}

/// `90`, `90s`, `5m`, `1h` → seconds.
pub fn parse_seconds(v: &str) -> Option<f64> {
    let v = v.trim();
    let (num, mult) = match v.char_indices().last()? {
        (i, 's') => (&v[..i], 1.0),
        (i, 'm') => (&v[..i], 60.0),
        (i, 'h') => (&v[..i], 3600.0),
        _ => (v, 1.0),
    };
    let n: f64 = num.parse().ok()?;
    (n > 0.0 && n.is_finite()).then_some(n * mult)
}

#[derive(Serialize)]
struct Row<T: Serialize> {
    #[serde(flatten)]
    id: T,
    stats: Stats,
    series: Vec<SeriesPoint>,
}

impl<T: Serialize> Row<T> {
    fn of(id: T, h: &crate::history::History, key: &Key, window: f64, step: f64) -> Self {
        Self {
            id,
            stats: h.stats(key, window),
            series: h.series(key, SERIES_SPAN, step),
        }
    }
}

async fn summary(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<Params>,
) -> Result<Json<serde_json::Value>, AppError> {
    let (window, step) = p.spans(shared.interval.as_secs_f64())?;
    let h = shared.history.read().unwrap_or_else(|e| e.into_inner());
    let services = h
        .keys()
        .into_iter()
        .filter(|k| matches!(k, Key::Service(_)))
        .count();
    let proxies = h.proxies();
    Ok(Json(json!({
        "window_s": window,
        "proxies": proxies,
        "proxies_up": proxies.iter().filter(|p| p.up).count(),
        "proxies_total": proxies.len(),
        "services_monitored": services,
        "stats": h.stats(&Key::Cluster, window),
        "series": h.series(&Key::Cluster, SERIES_SPAN, step),
        "identity": shared.identity.as_ref().map(|id| id.summary()),
    })))
}

/// The slowest recent requests whose traces were kept (of `service`, or of all), each with
/// a link to its trace when the dashboard knows where traces are shown.
async fn traces(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<Params>,
) -> Json<serde_json::Value> {
    let slowest = shared
        .slowest
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .list(p.service.as_deref());
    let rows: Vec<serde_json::Value> = slowest
        .into_iter()
        .map(|s| {
            let url = shared
                .trace_url
                .as_ref()
                .map(|u| u.replace("{trace_id}", &s.trace_id));
            let mut row = serde_json::to_value(s).unwrap_or_default();
            row["url"] = json!(url);
            row
        })
        .collect();
    Json(json!({ "slowest": rows, "trace_url": shared.trace_url }))
}

/// The dashboard's own metrics: its identity's, when it has one (the proxies' figures are
/// theirs to export).
async fn own_metrics(State(shared): State<Arc<Shared>>) -> Response {
    let body = shared
        .identity
        .as_ref()
        .map(|id| id.metrics_text())
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn services(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<Params>,
) -> Result<Json<serde_json::Value>, AppError> {
    let (window, step) = p.spans(shared.interval.as_secs_f64())?;
    let h = shared.history.read().unwrap_or_else(|e| e.into_inner());
    let keys = h.keys();
    // A service with routes is what its callers saw through them; its backends have rows
    // of their own.
    let routed: std::collections::BTreeSet<&str> = keys
        .iter()
        .filter_map(|k| match k {
            Key::Route { service, .. } => Some(service.as_str()),
            _ => None,
        })
        .collect();
    let mut names: std::collections::BTreeSet<&str> = keys
        .iter()
        .filter_map(|k| match k {
            Key::Service(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    names.extend(routed.iter().copied());
    let rows: Vec<_> = names
        .into_iter()
        .filter(|name| Params::wants(&p.service, name))
        .map(|name| {
            let mut row = if routed.contains(name) {
                let of_routes =
                    |k: &Key| matches!(k, Key::Route { service, .. } if service == name);
                json!({
                    "service": name,
                    "routed": true,
                    "stats": h.service_stats(name, window),
                    "series": h.series_of_all(of_routes, SERIES_SPAN, step),
                })
            } else {
                let key = Key::Service(name.to_string());
                serde_json::to_value(Row::of(json!({ "service": name }), &h, &key, window, step))
                    .unwrap_or_default()
            };
            // Ready instances as callers' proxies see them: now, and at each round.
            row["instances"] = json!(h.instances(name));
            row["instances_series"] = h
                .instances_series(name, SERIES_SPAN)
                .into_iter()
                .map(|(t, n)| json!({ "t": t, "instances": n }))
                .collect();
            row
        })
        .collect();
    Ok(Json(json!({ "window_s": window, "services": rows })))
}

async fn instances(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<Params>,
) -> Result<Json<serde_json::Value>, AppError> {
    let (window, step) = p.spans(shared.interval.as_secs_f64())?;
    let h = shared.history.read().unwrap_or_else(|e| e.into_inner());
    let nodes: Vec<_> = h
        .proxies()
        .iter()
        .filter(|px| Params::wants(&p.instance, &px.node))
        .map(|px| {
            let id = json!({
                "node": px.node,
                "target": px.target,
                "up": px.up,
                "identity": px.identity,
            });
            Row::of(id, &h, &Key::Node(px.node.clone()), window, step)
        })
        .collect();
    let endpoints: Vec<_> = h
        .keys()
        .into_iter()
        .filter_map(|k| match &k {
            Key::Endpoint { service, endpoint }
                if Params::wants(&p.service, service) && Params::wants(&p.instance, endpoint) =>
            {
                let id = json!({
                    "service": service,
                    "endpoint": endpoint,
                    "node": h.endpoint_node(endpoint),
                });
                Some(Row::of(id, &h, &k, window, step))
            }
            _ => None,
        })
        .collect();
    Ok(Json(
        json!({ "window_s": window, "nodes": nodes, "endpoints": endpoints }),
    ))
}

/// Each routed service's rules and their backends: what callers saw per rule, and per
/// backend every attempt sent there (its actual success rate and latency) and its live share
/// of the rule's attempts; `backends` adds each backend up over the service's rules, the
/// figures a canary is judged on.
async fn routes(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<Params>,
) -> Result<Json<serde_json::Value>, AppError> {
    let window = p.window()?;
    let h = shared.history.read().unwrap_or_else(|e| e.into_inner());
    let keys = h.keys();
    let share = |part: &Stats, all: f64| (all > 0.0).then(|| part.requests / all);
    let mut rules = Vec::new();
    let mut services: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for k in &keys {
        let Key::Route { service, route } = k else {
            continue;
        };
        if !Params::wants(&p.service, service) {
            continue;
        }
        let backends: Vec<(&str, Stats)> = keys
            .iter()
            .filter_map(|b| match b {
                Key::Backend {
                    service: s,
                    route: r,
                    backend,
                } if s == service && r == route => Some((backend.as_str(), h.stats(b, window))),
                _ => None,
            })
            .collect();
        let attempts: f64 = backends.iter().map(|(_, s)| s.requests).sum();
        let entry = services.entry(service.as_str()).or_default();
        entry.extend(backends.iter().map(|(b, _)| *b));
        rules.push(json!({
            "service": service,
            "route": route,
            "stats": h.stats(k, window),
            "backends": backends.iter().map(|(b, s)| json!({
                "backend": b,
                "share": share(s, attempts),
                "stats": s,
            })).collect::<Vec<_>>(),
        }));
    }
    let mut backends = Vec::new();
    for (service, mut names) in services {
        names.sort_unstable();
        names.dedup();
        let of = |name: &str| {
            let name = name.to_string();
            h.stats_of_all(
                |k| matches!(k, Key::Backend { service: s, backend, .. } if s == service && *backend == name),
                window,
            )
        };
        let all: Vec<(&str, Stats)> = names.iter().map(|n| (*n, of(n))).collect();
        let attempts: f64 = all.iter().map(|(_, s)| s.requests).sum();
        for (name, s) in all {
            backends.push(json!({
                "service": service,
                "backend": name,
                "share": share(&s, attempts),
                "stats": s,
            }));
        }
    }
    Ok(Json(
        json!({ "window_s": window, "routes": rules, "backends": backends }),
    ))
}
