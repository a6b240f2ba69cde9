//! The control plane's admin listener: /live, /ready (every resource listed) and /metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::identity::signer::Signer;
use crate::index::Answers;
use crate::metrics::Metrics;

#[derive(Clone)]
struct Admin {
    index: Arc<dyn Answers>,
    metrics: Arc<Metrics>,
    signer: Option<Arc<Signer>>,
}

pub fn router(
    index: Arc<dyn Answers>,
    metrics: Arc<Metrics>,
    signer: Option<Arc<Signer>>,
) -> Router {
    Router::new()
        .route("/live", get(|| async { "live\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(Admin {
            index,
            metrics,
            signer,
        })
}

async fn ready(State(a): State<Admin>) -> impl IntoResponse {
    if a.index.is_synced() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: kubernetes state not listed yet\n",
        )
    }
}

async fn metrics_text(State(a): State<Admin>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        a.metrics.render(a.index.as_ref(), a.signer.as_deref()),
    )
}
