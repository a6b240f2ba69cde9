//! weft's dashboard: collects every proxy's metrics (or asks Prometheus), keeps a bounded
//! history, and serves the web UI and a JSON API that `weft stat` reads too.
//!
//! Layout:
//! - [`source`]: scraping proxies directly, or querying Prometheus, into samples per proxy.
//! - [`history`]: counters → per-interval deltas → windows, series and quantiles.
//! - [`slowest`]: each service's slowest recent requests whose traces were kept.
//! - [`api`]: the HTTP routes: JSON API and the UI's embedded assets (`ui/`).
//! - [`tap`]: tap streams read, merged, and served at `/api/tap` from every proxy.
//! - [`fetch`]: the small HTTP GET both the scraper and `weft stat` use.
//! - [`identity`]: the dashboard's own mesh identity, shown in the API and `/metrics`.
#![forbid(unsafe_code)]

pub mod api;
pub mod fetch;
pub mod history;
pub mod identity;
pub mod slowest;
pub mod source;
pub mod tap;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::history::History;
use crate::identity::OwnIdentity;
use crate::slowest::Slowest;
use crate::source::Source;

#[derive(Clone, Debug)]
pub struct DashboardConfig {
    pub listen: SocketAddr,
    pub source: Source,
    /// How often metrics are collected.
    pub interval: Duration,
    /// How much history is kept (memory is bounded by history / interval points per key).
    pub history: Duration,
    /// The dashboard's own mesh identity, when it has one.
    pub identity: Option<OwnIdentity>,
    /// Where a trace is shown, `{trace_id}` standing for its id (a Jaeger or Tempo UI):
    /// the slowest requests link there.
    pub trace_url: Option<String>,
}

pub struct Shared {
    pub history: RwLock<History>,
    pub slowest: RwLock<Slowest>,
    pub trace_url: Option<String>,
    pub interval: Duration,
    pub source: Source,
    pub identity: Option<OwnIdentity>,
    /// Taps served at once: each holds a subscription on every proxy.
    pub taps: Arc<tokio::sync::Semaphore>,
}

pub struct DashboardHandle {
    pub addr: SocketAddr,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// What it collected, for a caller in the same process (`weft demo`'s autoscaler).
    pub shared: Arc<Shared>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (dashboard): {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// Binds the dashboard's listener, starts collecting, and serves until `stop` turns true.
pub async fn start(
    config: DashboardConfig,
    stop: watch::Receiver<bool>,
) -> Result<DashboardHandle, BindError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| BindError {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| BindError {
        addr: config.listen,
        source,
    })?;
    let points = (config.history.as_secs_f64() / config.interval.as_secs_f64()).ceil() as usize;
    let shared = Arc::new(Shared {
        history: RwLock::new(History::new(points + 1)),
        slowest: RwLock::new(Slowest::default()),
        trace_url: config.trace_url,
        interval: config.interval,
        source: config.source.clone(),
        identity: config.identity,
        taps: Arc::new(tokio::sync::Semaphore::new(tap::MAX_TAPS)),
    });
    let collector = tokio::spawn(collect(Arc::clone(&shared), stop.clone()));
    let app = api::router(Arc::clone(&shared)).merge(tap::router(Arc::clone(&shared)));
    let server = tokio::spawn(weft_metrics::serve::serve(listener, app, stop));
    tracing::info!(%addr, "weft dashboard listening");
    Ok(DashboardHandle {
        addr,
        tasks: vec![collector, server],
        shared,
    })
}

async fn collect(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(shared.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let scrapes = shared.source.scrape().await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        shared
            .history
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .ingest(now, &scrapes);
        shared
            .slowest
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .ingest(now, &scrapes);
    }
}
