//! Wires a proxy together from its config — discovery, pools, the three listeners — and runs
//! it until it is told to drain.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use weft_core::config::ProxyConfig;
use weft_core::NameRules;
use weft_discovery::{
    ControlPlaneDiscovery, Discover, DiscoveryError, FileDiscovery, StaticDiscovery, Table,
};
use weft_metrics::{Direction, Metrics};

use crate::admin::Admin;
use crate::balancer::PeakEwmaP2c;
use crate::client::connect::Connector;
use crate::client::h1::H1Pool;
use crate::client::h2::H2Pool;
use crate::lifecycle::{self, Shared};
use crate::resilience::policy::Table as PolicyTable;
use crate::resilience::timers::Timers;
use crate::server;
use crate::services::Services;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("discovery: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error("{0}")]
    ControlPlane(String),
    #[error("resilience policy: {0}")]
    Policy(String),
}

pub struct Proxy;

/// A running proxy: where it listens, and how to stop it.
pub struct ProxyHandle {
    pub outbound: SocketAddr,
    pub inbound: SocketAddr,
    pub admin: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Proxy {
    /// Loads discovery, binds every listener (failing fast on a busy port) and starts serving.
    pub async fn start(config: ProxyConfig) -> Result<ProxyHandle, StartError> {
        let metrics = Arc::new(Metrics::new(&config.node));
        let mut tasks = JoinSet::new();
        let discovery: Arc<dyn Discover> =
            match (&config.discovery.control_plane, &config.discovery.file) {
                (Some(addr), _) => {
                    let errors = metrics.discovery_errors.clone();
                    ControlPlaneDiscovery::new(
                        addr,
                        &config.node,
                        Arc::new(move || {
                            errors.inc();
                        }),
                    )
                    .map_err(|e| StartError::ControlPlane(e.to_string()))?
                }
                (None, Some(path)) => {
                    let file = FileDiscovery::load(path)?;
                    let errors = metrics.discovery_errors.clone();
                    let watch = file.spawn_watch(Arc::new(move |_| {
                        errors.inc();
                    }));
                    tasks.spawn(async move {
                        let _ = watch.await;
                    });
                    file
                }
                (None, None) => Arc::new(StaticDiscovery::new(Table::default())),
            };

        let bind = |listener: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind {
                    listener,
                    addr,
                    source,
                })
        };
        let outbound_l = bind("outbound", config.outbound.listen).await?;
        let inbound_l = bind("inbound", config.inbound.listen).await?;
        let admin_l = bind("admin", config.admin.listen).await?;
        let local = |l: &TcpListener| l.local_addr().expect("bound listener has an address");
        let (outbound, inbound, admin) = (local(&outbound_l), local(&inbound_l), local(&admin_l));

        let connector = Connector {
            timeout: config.http.connect_timeout,
        };
        let http = config.http.clone();
        // A port-0 listener advertises the port it really got.
        let advertise = config.inbound.advertise.unwrap_or(inbound);
        let policies = Arc::new(arc_swap::ArcSwap::from_pointee(PolicyTable::new(
            config.policies().map_err(StartError::Policy)?,
        )));
        if let Some(path) = config.source.clone() {
            let task = crate::reload::watch_config(
                path,
                Arc::clone(&policies),
                metrics.config_errors.clone(),
            );
            tasks.spawn(async move {
                let _ = task.await;
            });
        }
        let shared = Arc::new(Shared {
            names: NameRules::new(&config.names.suffixes),
            outbound: Services::new(
                Direction::Outbound,
                None,
                discovery.clone(),
                metrics.http.clone(),
                Arc::clone(&policies),
            ),
            inbound: Services::new(
                Direction::Inbound,
                Some(advertise),
                discovery.clone(),
                metrics.http.clone(),
                Arc::clone(&policies),
            ),
            balancer: Box::new(PeakEwmaP2c),
            policies,
            h1: H1Pool::new(
                connector.clone(),
                http.pool_idle_timeout,
                http.pool_max_idle,
            ),
            h2: H2Pool::new(connector, http.pool_idle_timeout),
            advertise,
            config,
            timers: Timers::default(),
        });
        let (shutdown, _) = watch::channel(false);

        let s = Arc::clone(&shared);
        tasks.spawn(server::serve(
            outbound_l,
            http.clone(),
            metrics.tcp.listener(Direction::Outbound),
            shutdown.subscribe(),
            move |_, req| lifecycle::outbound(Arc::clone(&s), req),
        ));
        let s = Arc::clone(&shared);
        tasks.spawn(server::serve(
            inbound_l,
            http.clone(),
            metrics.tcp.listener(Direction::Inbound),
            shutdown.subscribe(),
            move |_, req| lifecycle::inbound(Arc::clone(&s), req),
        ));
        let admin_state = Arc::new(Admin {
            shared,
            discovery,
            metrics: Arc::clone(&metrics),
            ready: Default::default(),
            shutdown: shutdown.clone(),
        });
        admin_state.ready.store(true, Ordering::Release);
        let mut admin_http = http;
        admin_http.shutdown_grace = admin_http
            .shutdown_grace
            .min(std::time::Duration::from_secs(1));
        tasks.spawn(server::serve(
            admin_l,
            admin_http,
            metrics.tcp.listener(Direction::Admin),
            shutdown.subscribe(),
            move |peer, req| Arc::clone(&admin_state).handle(peer, req),
        ));
        tracing::info!(%outbound, %inbound, %admin, "weft proxy listening");
        Ok(ProxyHandle {
            outbound,
            inbound,
            admin,
            shutdown,
            tasks,
        })
    }
}

impl ProxyHandle {
    /// Starts draining: listeners close, in-flight requests finish within the grace period.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// A receiver that turns true when draining begins (from any cause, the admin API too).
    pub fn draining(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Waits for the listeners to drain. The discovery watcher is stopped with them.
    pub async fn wait(mut self) {
        let mut draining = self.shutdown.subscribe();
        let _ = draining.wait_for(|d| *d).await;
        // Three listener tasks end on their own; the rest (discovery) is aborted.
        let mut ended = 0;
        while ended < 3 {
            match self.tasks.join_next().await {
                Some(_) => ended += 1,
                None => break,
            }
        }
        self.tasks.abort_all();
    }
}
