//! weft's dashboard: collects every proxy's metrics (or asks Prometheus), keeps a bounded
//! history, and serves the web UI and a JSON API that `weft stat` reads too.
//!
//! Layout:
//! - [`source`]: scraping proxies directly, or querying Prometheus, into samples per proxy.
//! - [`history`]: counters → per-interval deltas → windows, series and quantiles.
//! - [`slowest`]: each service's slowest recent requests whose traces were kept.
//! - [`api`]: the HTTP routes: JSON API and the UI's embedded assets (`ui/`).
//! - [`tap`]: tap streams read, merged, and served at `/api/tap` from every proxy.
//! - [`autoscale`]: a service's figures for autoscalers; [`metrics_api`] serves them as
//!   Kubernetes' external metrics API (over TLS, with [`weft_core::label_selector`]).
//! - [`keda`]: the same figures as KEDA's external scaler (gRPC over mutual TLS,
//!   `--keda-listen`).
//! - [`fetch`]: the small HTTP GET both the scraper and `weft stat` use.
//! - [`identity`]: the dashboard's own mesh identity, shown in the API and `/metrics`.
#![forbid(unsafe_code)]

pub mod api;
pub mod autoscale;
pub mod fetch;
pub mod history;
pub mod identity;
pub mod keda;
pub mod metrics_api;
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
    /// Where and how KEDA's external scaler is served, if anywhere.
    pub keda: Option<KedaConfig>,
    /// Where the external metrics API is served, if anywhere.
    pub metrics_api: Option<MetricsApiConfig>,
}

/// The external metrics API's listener and the certificate it presents (the API server's
/// aggregator speaks only HTTPS to the servers it forwards to).
#[derive(Clone, Debug)]
pub struct MetricsApiConfig {
    pub listen: SocketAddr,
    pub cert: Arc<weft_identity::edge::EdgeCert>,
    /// Who may call: the API server's aggregator, by its client certificate. `None` takes
    /// any caller (a dashboard on a laptop; the figures are read-only).
    pub callers: Option<Arc<weft_identity::callers::Callers>>,
}

/// KEDA's external scaler's listener, and its TLS: `None` serves plaintext h2c.
#[derive(Clone, Debug)]
pub struct KedaConfig {
    pub listen: SocketAddr,
    pub tls: Option<keda::KedaTls>,
}

pub struct Shared {
    pub history: RwLock<History>,
    pub slowest: RwLock<Slowest>,
    pub trace_url: Option<String>,
    pub interval: Duration,
    /// How much history is kept: the longest window a figure can be asked over.
    pub kept: Duration,
    pub source: Source,
    pub identity: Option<OwnIdentity>,
    /// Taps served at once: each holds a subscription on every proxy.
    pub taps: Arc<tokio::sync::Semaphore>,
}

pub struct DashboardHandle {
    pub addr: SocketAddr,
    /// KEDA's external scaler's address, when it is served.
    pub keda: Option<SocketAddr>,
    /// The external metrics API's address, when it is served.
    pub metrics_api: Option<SocketAddr>,
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
    let (listener, addr) = bind(config.listen).await?;
    let points = (config.history.as_secs_f64() / config.interval.as_secs_f64()).ceil() as usize;
    let shared = Arc::new(Shared {
        history: RwLock::new(History::new(points + 1)),
        slowest: RwLock::new(Slowest::default()),
        trace_url: config.trace_url,
        interval: config.interval,
        kept: config.history,
        source: config.source.clone(),
        identity: config.identity,
        taps: Arc::new(tokio::sync::Semaphore::new(tap::MAX_TAPS)),
    });
    let collector = tokio::spawn(collect(Arc::clone(&shared), stop.clone()));
    let mut tasks = vec![collector];
    let mut metrics_api_addr = None;
    if let Some(api) = config.metrics_api {
        let (addr, task) = serve_metrics_api(api, Arc::clone(&shared), stop.clone()).await?;
        metrics_api_addr = Some(addr);
        tasks.push(task);
    }
    let mut keda_addr = None;
    if let Some(keda) = config.keda {
        let (addr, task) = serve_keda(keda, Arc::clone(&shared), stop.clone()).await?;
        keda_addr = Some(addr);
        tasks.push(task);
    }
    let app = api::router(Arc::clone(&shared)).merge(tap::router(Arc::clone(&shared)));
    tasks.push(tokio::spawn(weft_metrics::serve::serve(
        listener, app, stop,
    )));
    tracing::info!(%addr, "weft dashboard listening");
    Ok(DashboardHandle {
        addr,
        keda: keda_addr,
        metrics_api: metrics_api_addr,
        tasks,
        shared,
    })
}

/// Serves the external metrics API over TLS (HTTP/1.1), reading a certificate from files
/// again every [`metrics_api::TLS_RELOAD`].
async fn serve_metrics_api(
    config: MetricsApiConfig,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), BindError> {
    let (listener, addr) = bind(config.listen).await?;
    let tls = config
        .cert
        .http1_server_config(config.callers.clone())
        .map_err(|e| tls_error(config.listen, e))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let cert = Arc::clone(&config.cert);
    reload_every(
        stop.clone(),
        "the external metrics API's certificate",
        move || cert.reload(),
    );
    let app = metrics_api::router(shared);
    let task = tokio::spawn(weft_metrics::serve::serve_with(
        listener,
        app,
        stop,
        move |tcp| acceptor.clone().accept(tcp),
    ));
    tracing::info!(%addr, "external metrics API listening");
    Ok((addr, task))
}

/// Serves KEDA's scaler: over TLS, reading its certificate and client CA from files again
/// every [`metrics_api::TLS_RELOAD`], or in plaintext.
async fn serve_keda(
    config: KedaConfig,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), BindError> {
    let (listener, addr) = bind(config.listen).await?;
    let tls = match config.tls {
        Some(tls) => {
            let server = tls
                .server_config()
                .map_err(|e| tls_error(config.listen, e))?;
            reload_every(
                stop.clone(),
                "the KEDA scaler's certificate or client CA",
                move || tls.reload(),
            );
            Some(server)
        }
        None => None,
    };
    let served_tls = tls.is_some();
    let task = tokio::spawn(keda::serve_keda(listener, tls, shared, stop));
    tracing::info!(keda = %addr, tls = served_tls, "KEDA external scaler listening");
    Ok((addr, task))
}

/// Binds `listen`, and says where it is bound (port 0 picks one).
async fn bind(listen: SocketAddr) -> Result<(TcpListener, SocketAddr), BindError> {
    let error = |source| BindError {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(error)?;
    let addr = listener.local_addr().map_err(error)?;
    Ok((listener, addr))
}

/// A listener's TLS that does not build, reported as its start failing.
fn tls_error(listen: SocketAddr, e: String) -> BindError {
    BindError {
        addr: listen,
        source: std::io::Error::other(e),
    }
}

/// Reads `what` from its files again every [`metrics_api::TLS_RELOAD`] until `stop`; a
/// read that fails keeps the last, and says so.
fn reload_every(
    mut stop: watch::Receiver<bool>,
    what: &'static str,
    reload: impl Fn() -> Result<(), String> + Send + 'static,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(metrics_api::TLS_RELOAD) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = reload() {
                tracing::warn!(error = %e, "{what} did not reload; the last stays");
            }
        }
    });
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
