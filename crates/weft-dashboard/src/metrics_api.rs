//! The Kubernetes external metrics API (`external.metrics.k8s.io/v1beta1`), served from
//! the dashboard's own history of the proxies' figures, no Prometheus in between: the API
//! server's aggregator forwards an HPA's `External` metric here (an APIService that
//! `weft install --autoscaling` renders). Answers have the shape of the API's Go types,
//! errors are `Status` objects as an API server writes them, and a figure the history
//! cannot back is left out of the list (the HPA then keeps the scale) rather than sent as
//! a zero that would scale the service to its minimum.
//!
//! `GET /apis/external.metrics.k8s.io/v1beta1/namespaces/NS/METRIC?labelSelector=...`: one
//! item per service in NS the selector takes (`service=world`; `window=2m` chooses the
//! window, 30 s by default).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use weft_core::label_selector::Selector;

use crate::autoscale::{self, Metric, SERVICE_LABEL, WINDOW_LABEL};
use crate::Shared;

pub const GROUP: &str = "external.metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
const GROUP_VERSION: &str = "external.metrics.k8s.io/v1beta1";

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/apis", get(group_list))
        .route("/apis/external.metrics.k8s.io", get(group))
        .route("/apis/external.metrics.k8s.io/v1beta1", get(resources))
        .route(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}",
            get(values),
        )
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .fallback(|| async {
            status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
                None,
            )
        })
        .with_state(shared)
}

async fn ok() -> &'static str {
    "ok"
}

fn version() -> Value {
    json!({ "groupVersion": GROUP_VERSION, "version": VERSION })
}

async fn group_list() -> Json<Value> {
    Json(json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [{ "name": GROUP, "versions": [version()], "preferredVersion": version() }],
    }))
}

async fn group() -> Json<Value> {
    Json(json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": GROUP,
        "versions": [version()],
        "preferredVersion": version(),
    }))
}

async fn resources() -> Json<Value> {
    let resources: Vec<Value> = Metric::ALL
        .iter()
        .map(|m| {
            json!({
                "name": m.name(),
                "singularName": "",
                "namespaced": true,
                "kind": "ExternalMetricValueList",
                "verbs": ["get"],
            })
        })
        .collect();
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": resources,
    }))
}

#[derive(Deserialize)]
struct ListOptions {
    #[serde(rename = "labelSelector")]
    label_selector: Option<String>,
}

async fn values(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(options): Query<ListOptions>,
) -> Response {
    let Some(metric) = Metric::from_name(&name) else {
        let message = format!(
            "the server could not find the metric {name}: weft serves {}",
            Metric::names()
        );
        return status(StatusCode::NOT_FOUND, "NotFound", &message, Some(&name));
    };
    let selector = match Selector::parse(options.label_selector.as_deref().unwrap_or("")) {
        Ok(s) => s,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string(), None),
    };
    let asked_window = selector.pinned(WINDOW_LABEL).map(str::to_string);
    let window = match autoscale::window(&shared, asked_window.as_deref()) {
        Ok(w) => w,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string(), None),
    };
    let matching = selector.without(WINDOW_LABEL);
    let history = shared.history.read().unwrap_or_else(|e| e.into_inner());
    let mut items = Vec::new();
    let mut unanswered = Vec::new();
    if history.last_round().is_none() {
        unanswered.push(autoscale::NoReading::NotStarted.to_string());
    }
    let known = autoscale::services(&history, &namespace);
    for service in &known {
        let service = service.clone();
        let mut labels = BTreeMap::from([(SERVICE_LABEL.to_string(), service.clone())]);
        if !matching.matches(&labels) {
            continue;
        }
        match autoscale::read(&history, &namespace, &service, metric, window) {
            Ok(reading) => {
                if let Some(w) = &asked_window {
                    labels.insert(WINDOW_LABEL.into(), w.clone());
                }
                items.push(json!({
                    "metricName": metric.name(),
                    "metricLabels": labels,
                    "timestamp": weft_core::calendar::rfc3339(reading.at),
                    "window": reading.window.as_secs(),
                    "value": quantity(reading.value),
                }));
            }
            Err(why) => unanswered.push(why.to_string()),
        }
    }
    drop(history);
    let empty = items.is_empty();
    let mut rsp = Json(json!({
        "kind": "ExternalMetricValueList",
        "apiVersion": GROUP_VERSION,
        "metadata": {},
        "items": items,
    }))
    .into_response();
    // An empty or partial answer says why, as API servers pass advice: in `Warning`
    // headers, which kubectl and client-go show.
    if empty || !unanswered.is_empty() {
        let why = if unanswered.is_empty() {
            match matching.pinned(SERVICE_LABEL) {
                Some(s) if !known.iter().any(|k| k == s) => {
                    autoscale::NoReading::UnknownService(s.into(), namespace).to_string()
                }
                _ => format!("no service in namespace {namespace} matches the selector"),
            }
        } else {
            unanswered.join("; ")
        };
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {:?}", why.replace('"', "'"))) {
            rsp.headers_mut().append("warning", v);
        }
    }
    rsp
}

/// A Kubernetes `Status` failure, as API servers answer errors.
fn status(code: StatusCode, reason: &str, message: &str, name: Option<&str>) -> Response {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(name) = name {
        body["details"] = json!({ "name": name, "group": GROUP, "kind": name });
    }
    (code, Json(body)).into_response()
}

/// A value as a Kubernetes quantity, to the thousandth: `12`, `12500m`, `0`. Quantities
/// carry no more precision than milli-units in their canonical form.
pub fn quantity(v: f64) -> String {
    let milli = (v.max(0.0) * 1000.0).round() as u64;
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// How often a certificate from files is read again (a renewed Secret is picked up).
pub const TLS_RELOAD: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_as_kubernetes_writes_them() {
        assert_eq!(quantity(12.0), "12");
        assert_eq!(quantity(12.5), "12500m");
        assert_eq!(quantity(0.0), "0");
        assert_eq!(quantity(0.0004), "0");
        assert_eq!(quantity(0.9951), "995m");
        assert_eq!(quantity(-1.0), "0");
    }
}
