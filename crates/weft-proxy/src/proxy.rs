//! Wires a proxy together from its config — discovery, policies, upstream clients, the three
//! listeners — and runs it until it is told to drain.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use weft_core::config::ProxyConfig;
use weft_core::NameRules;
use weft_discovery::filewatch::{watch_file, Change};
use weft_discovery::{
    ControlPlaneDiscovery, Discover, DiscoveryError, FileDiscovery, StaticDiscovery, Table,
};
use weft_http::client::{Connector, H1Pool, H2Pool};
use weft_http::server::{self, Limits, ServerTls};
use weft_http::timers::Timers;
use weft_http::ConnStats;
use weft_identity::edge::EdgeCert;
use weft_metrics::tcp::ListenerMetrics;
use weft_metrics::{Direction, Metrics};

use crate::admin::Admin;
use crate::admission::InFlight;
use crate::balancer::PeakEwmaP2c;
use crate::delivery::Upstreams;
use crate::egress::discovery::EgressDiscovery;
use crate::egress::list::EgressList;
use crate::identity::{CertifierError, MeshIdentity};
use crate::ingress::{self, Ingress};
use crate::lifecycle;
use crate::resilience::policy::Table as PolicyTable;
use crate::services::Services;
use crate::shared::Shared;
use crate::trace::{Exporter, Tracer};
use weft_api::channel;

/// The admin listener drains quickly whatever the data plane's grace: nothing on it is long
/// (a tap's stream is closed when the drain begins).
const ADMIN_GRACE: Duration = Duration::from_secs(1);
/// Probes, scrapers and an operator's curl: a handful at a time.
const ADMIN_CONNECTIONS: usize = 256;
/// How often a drained proxy looks for its final scrape.
const FINAL_SCRAPE_POLL: Duration = Duration::from_millis(100);

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
    #[error("identity: {0}")]
    Identity(#[from] weft_identity::IdentityError),
    #[error("ingress: {0}")]
    Ingress(String),
    #[error("egress: {0}")]
    Egress(String),
}

pub struct Proxy;

/// A running proxy: where it listens, and how to stop it.
pub struct ProxyHandle {
    pub outbound: SocketAddr,
    pub inbound: SocketAddr,
    pub admin: SocketAddr,
    /// The ingress listener, when the config has one.
    pub ingress: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    /// The outbound and inbound listeners: each ends on its own once drained.
    listeners: JoinSet<()>,
    /// The admin listener, drained last: its final counts are collected first.
    admin_listener: JoinHandle<()>,
    admin_stop: watch::Sender<bool>,
    /// `/metrics` answers so far.
    scrapes: Arc<AtomicU64>,
    /// Whether a drained proxy that has been scraped waits for one more scrape.
    final_scrape: bool,
    grace: Duration,
    /// Work that runs as long as the proxy does (watching files), stopped after the drain.
    background: Vec<JoinHandle<()>>,
    /// The span exporter, told to send what it holds once the last request has ended.
    exporter: Option<Exporter>,
}

impl Proxy {
    /// Loads discovery, binds every listener (failing fast on a busy port) and starts serving,
    /// in plaintext between proxies.
    pub async fn start(config: ProxyConfig) -> Result<ProxyHandle, StartError> {
        Self::start_with_identity(config, None).await
    }

    /// [`Proxy::start`], with mutual TLS between proxies when `identity` is given.
    pub async fn start_with_identity(
        config: ProxyConfig,
        identity: Option<MeshIdentity>,
    ) -> Result<ProxyHandle, StartError> {
        let metrics = Arc::new(Metrics::new(&config.node));
        let mut background = Vec::new();
        let identity = match identity {
            Some(id) => Some(id),
            // An ingress is no node's proxy: it is certified as the ingress, which every
            // proxy's inbound takes as a client and no `override_peers` pattern for
            // proxies matches.
            None if config.identity.trust_anchors.is_some()
                && config.identity.account.is_some() =>
            {
                let account = config.identity.account.as_deref().unwrap_or_default();
                Some(MeshIdentity::workload(&config.identity, account)?)
            }
            None if config.identity.trust_anchors.is_some() => {
                Some(MeshIdentity::from_config(&config.identity, &config.node)?)
            }
            None => None,
        };
        let control_tls = match &identity {
            Some(id) if id.status.is_some() => Some(certify(
                &config,
                id,
                metrics.identity.clone(),
                &mut background,
            )?),
            _ => None,
        };
        let discovery = discovery(&config, &metrics, control_tls, &mut background)?;
        // Listed hosts outside the mesh are services too, resolved by DNS.
        let discovery = EgressDiscovery::wrap(discovery, &config.egress)
            .map_err(|e| StartError::Egress(e.to_string()))?;

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
        let ingress_l = match config.ingress.listen {
            Some(addr) => Some(bind("ingress", addr).await?),
            None => None,
        };
        let local = |l: &TcpListener| l.local_addr().expect("bound listener has an address");
        let (outbound, inbound, admin) = (local(&outbound_l), local(&inbound_l), local(&admin_l));
        let ingress_addr = ingress_l.as_ref().map(local);

        // A port-0 listener advertises the port it really got.
        let advertise = config.inbound.advertise.unwrap_or(inbound);
        metrics.advertise_inbound(advertise);
        let policies = Arc::new(arc_swap::ArcSwap::from_pointee(PolicyTable::new(
            config.policies().map_err(StartError::Policy)?,
        )));
        if let Some(path) = config.source.clone() {
            let errors = metrics.config_errors.clone();
            background.push(crate::reload::watch_config(
                path,
                Arc::clone(&policies),
                errors,
            ));
        }
        let http = &config.http;
        let instances = Connector::plain(http.connect_timeout);
        let peers = Connector {
            timeout: http.connect_timeout,
            origin: None,
            tls: identity.as_ref().map(MeshIdentity::client).transpose()?,
        };
        if let Some(id) = &identity {
            let tcp = metrics.tcp.clone();
            id.bundle
                .on_refused(Arc::new(move |why| tcp.tls_refused(why.as_str())));
        }
        let inbound_tls = identity
            .as_ref()
            .map(MeshIdentity::server)
            .transpose()?
            .map(Arc::new);
        let limits = Limits {
            header_read_timeout: http.header_read_timeout,
            max_header_bytes: http.max_header_bytes,
            shutdown_grace: http.shutdown_grace,
            accept_while_draining: false,
            max_connections: http.max_connections,
            idle_timeout: http.idle_timeout,
            stream_idle_timeout: http.stream_idle_timeout,
            police_resets: false,
        };
        let ingress = match &ingress_l {
            Some(_) => Some(start_ingress(&config, &metrics, &mut background)?),
            None => None,
        };
        let (shutdown, _) = watch::channel(false);
        let egress = EgressList::new(&config.egress, &config.http).map_err(StartError::Egress)?;
        let outside = egress.outside();
        let services = |direction, local| {
            let (discovery, policies) = (Arc::clone(&discovery), Arc::clone(&policies));
            let routes = (direction == Direction::Outbound).then(|| metrics.routes.clone());
            Services::new(
                direction,
                local,
                discovery,
                metrics.http.clone(),
                routes,
                policies,
                match direction {
                    Direction::Outbound => Arc::clone(&outside),
                    _ => Default::default(),
                },
            )
        };
        let shared_identity = identity.clone();
        let (tracer, exporter) =
            Tracer::start(&config.tracing, &config.node, metrics.trace.clone()).unzip();
        let shared = Arc::new(Shared {
            names: NameRules::new(&config.names.suffixes),
            egress,
            outbound: services(Direction::Outbound, None),
            inbound: services(Direction::Inbound, Some(advertise)),
            balancer: Box::new(PeakEwmaP2c),
            upstreams: Upstreams {
                h1: H1Pool::new(
                    instances.clone(),
                    http.pool_idle_timeout,
                    http.pool_max_idle,
                ),
                h2: H2Pool::new(instances, http.pool_idle_timeout),
                peers: H2Pool::new(peers.clone(), http.pool_idle_timeout),
                peer_connector: peers,
                timers: Timers::default(),
            },
            policies,
            advertise,
            limits,
            draining: shutdown.subscribe(),
            tunnels: metrics.tunnels.clone(),
            peers: metrics.peers.clone(),
            context: metrics.context.clone(),
            identity: identity
                .as_ref()
                .map(|id| id.credentials.identity().clone()),
            tracer,
            taps: Arc::new(crate::tap::Taps::new(
                &config.node,
                &config.tap,
                Arc::clone(&discovery),
                metrics.tap_subscribers.clone(),
            )),
            tapper: identity.as_ref().and_then(|id| {
                let own = id.credentials.identity();
                let dashboard = own.sibling(weft_identity::DASHBOARD_ACCOUNT).ok()?;
                Some(dashboard.as_str().into())
            }),
            outbound_in_flight: InFlight::new(http.max_requests_in_flight),
            ingress_in_flight: InFlight::new(http.max_requests_in_flight),
            inbound_in_flight: InFlight::new(http.max_requests_in_flight),
            config,
        });
        // No peer connection outlives the leaf it was made with for long: at each renewal new
        // requests go on new connections, and the old ones close once their streams end.
        if let Some(status) = identity.as_ref().and_then(|id| id.status.clone()) {
            let mut renewals = status.renewals();
            let peers = Arc::clone(&shared.upstreams.peers);
            background.push(tokio::spawn(async move {
                while renewals.changed().await.is_ok() {
                    peers.retire_all();
                }
            }));
        }
        let stats = |direction| -> weft_http::Stats {
            Arc::new(Listener(
                metrics.tcp.listener(direction),
                metrics.tcp.clone(),
            ))
        };

        // A tap's stream never ends by itself: at the drain it is closed, saying why, so
        // it does not hold its connection (and the drain) to the end of the grace.
        let (taps, mut draining) = (Arc::clone(&shared.taps), shutdown.subscribe());
        background.push(tokio::spawn(async move {
            if draining.wait_for(|d| *d).await.is_ok() {
                taps.close_all("the proxy is draining");
            }
        }));

        let mut listeners = JoinSet::new();
        let s = Arc::clone(&shared);
        listeners.spawn(server::serve(
            outbound_l,
            // The node's apps have no other proxy: they are served while the drain lasts.
            Limits {
                accept_while_draining: true,
                police_resets: true,
                ..limits
            },
            None,
            stats(Direction::Outbound),
            shutdown.subscribe(),
            move |peer, req| lifecycle::outbound(Arc::clone(&s), peer, req),
        ));
        let s = Arc::clone(&shared);
        listeners.spawn(server::serve(
            inbound_l,
            limits,
            inbound_tls,
            stats(Direction::Inbound),
            shutdown.subscribe(),
            move |peer, req| lifecycle::inbound(Arc::clone(&s), peer, req),
        ));
        if let (Some(l), Some((ingress, tls))) = (ingress_l, ingress) {
            let s = Arc::clone(&shared);
            listeners.spawn(server::serve(
                l,
                limits,
                tls,
                stats(Direction::Ingress),
                shutdown.subscribe(),
                move |client, req| {
                    ingress::handle(Arc::clone(&s), Arc::clone(&ingress), client, req)
                },
            ));
        }
        let scrapes = Arc::new(AtomicU64::new(0));
        let admin_state = Arc::new(Admin {
            identity: shared_identity,
            shared,
            discovery,
            metrics: Arc::clone(&metrics),
            ready: Default::default(),
            shutdown: shutdown.clone(),
            scrapes: Arc::clone(&scrapes),
        });
        admin_state.ready.store(true, Ordering::Release);
        let admin_limits = Limits {
            shutdown_grace: limits.shutdown_grace.min(ADMIN_GRACE),
            max_connections: ADMIN_CONNECTIONS,
            ..limits
        };
        let (admin_stop, admin_stopped) = watch::channel(false);
        let admin_listener = tokio::spawn(server::serve(
            admin_l,
            admin_limits,
            None,
            stats(Direction::Admin),
            admin_stopped,
            move |peer, req| Arc::clone(&admin_state).handle(peer, req),
        ));
        match ingress_addr {
            Some(ingress) => {
                tracing::info!(%outbound, %inbound, %admin, %ingress, "weft proxy listening")
            }
            None => tracing::info!(%outbound, %inbound, %admin, "weft proxy listening"),
        }
        Ok(ProxyHandle {
            outbound,
            inbound,
            admin,
            ingress: ingress_addr,
            shutdown,
            listeners,
            admin_listener,
            admin_stop,
            scrapes,
            final_scrape: true,
            grace: limits.shutdown_grace,
            background,
            exporter,
        })
    }
}

/// The ingress's routes, and its TLS when it terminates TLS: the certificate's files
/// watched, a new pair taken at once and a bad one refused (the last good one stays).
fn start_ingress(
    config: &ProxyConfig,
    metrics: &Metrics,
    background: &mut Vec<JoinHandle<()>>,
) -> Result<(Arc<Ingress>, Option<Arc<ServerTls>>), StartError> {
    let ingress = Ingress::new(&config.ingress, &metrics.routes).map_err(StartError::Ingress)?;
    let tls = match (&config.ingress.tls_cert, &config.ingress.tls_key) {
        (Some(cert), Some(key)) => {
            // Read before the pair is loaded: a file changed in between is then seen as a
            // change, not taken for what was loaded.
            let seen = [std::fs::read(cert).ok(), std::fs::read(key).ok()];
            let edge = EdgeCert::load(cert, key).map_err(StartError::Ingress)?;
            for (file, seen) in edge.files().into_iter().zip(seen) {
                let (edge, errors) = (Arc::clone(&edge), metrics.config_errors.clone());
                background.push(watch_file(file, seen, move |change| {
                    if let Change::Changed(_) = change {
                        match edge.reload() {
                            Ok(()) => tracing::info!("ingress certificate reloaded"),
                            Err(e) => {
                                errors.inc();
                                tracing::warn!(error = %e, "ingress certificate not reloaded; the last good one stays");
                            }
                        }
                    }
                }));
            }
            let config = edge.server_config().map_err(StartError::Ingress)?;
            Some(Arc::new(ServerTls {
                config,
                allow_plaintext: false,
                identify: None,
            }))
        }
        _ => None,
    };
    Ok((Arc::new(ingress), tls))
}

/// Starts getting the proxy's leaf from the control plane; the TLS its Destination
/// channel then uses, which waits for that leaf before it connects.
fn certify(
    config: &ProxyConfig,
    identity: &MeshIdentity,
    metrics: weft_metrics::IdentityMetrics,
    background: &mut Vec<JoinHandle<()>>,
) -> Result<channel::Tls, StartError> {
    let addr = config
        .discovery
        .control_plane
        .as_deref()
        .unwrap_or_default();
    let control = identity.control(&config.identity.namespace)?;
    let config_tls = weft_identity::tls::control_client_config(
        Arc::clone(&identity.credentials),
        Arc::clone(&identity.bundle),
        control,
    )?;
    let certifier = identity
        .certifier(&config.identity, addr, metrics)
        .map_err(|e| match e {
            CertifierError::Identity(e) => StartError::Identity(e),
            CertifierError::ControlPlane(e) => StartError::ControlPlane(e),
        })?;
    background.push(tokio::spawn(certifier.run()));
    let credentials = Arc::clone(&identity.credentials);
    Ok(channel::Tls {
        config: config_tls,
        gate: Some(Arc::new(move || {
            if credentials.is_ready() {
                Ok(())
            } else {
                Err("no certificate yet to show the control plane".into())
            }
        })),
    })
}

/// The discovery source the config names: the control plane, a watched file, or none.
fn discovery(
    config: &ProxyConfig,
    metrics: &Metrics,
    control_tls: Option<channel::Tls>,
    background: &mut Vec<JoinHandle<()>>,
) -> Result<Arc<dyn Discover>, StartError> {
    let errors = metrics.discovery_errors.clone();
    match (&config.discovery.control_plane, &config.discovery.file) {
        (Some(addr), _) => {
            let on_error = Arc::new(move || {
                errors.inc();
            });
            let channel = channel::connect_lazy(addr, control_tls)
                .map_err(|e| StartError::ControlPlane(e.to_string()))?;
            Ok(ControlPlaneDiscovery::new(channel, &config.node, on_error))
        }
        (None, Some(path)) => {
            let file = FileDiscovery::load(path)?;
            background.push(file.spawn_watch(Arc::new(move |_| {
                errors.inc();
            })));
            Ok(file)
        }
        (None, None) => Ok(Arc::new(StaticDiscovery::new(Table::default()))),
    }
}

impl ProxyHandle {
    /// Starts draining: listeners close, in-flight requests finish within the grace period.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// A proxy whose collector stops with it (the demo's) need not wait for a final scrape.
    pub fn without_final_scrape(mut self) -> Self {
        self.final_scrape = false;
        self
    }

    /// A receiver that turns true when draining begins (from any cause, the admin API too).
    pub fn draining(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Waits for a drain to begin and every listener to finish it, then stops the
    /// background work. A proxy that is scraped waits (within the grace period) for one
    /// more scrape after its last request, so its final counts are collected, not lost
    /// with it.
    pub async fn wait(mut self) {
        let mut draining = self.shutdown.subscribe();
        let _ = draining.wait_for(|d| *d).await;
        let deadline = tokio::time::Instant::now() + self.grace;
        while self.listeners.join_next().await.is_some() {}
        // The spans get time of their own: a drain that used up the grace would leave them
        // none.
        if let Some(exporter) = self.exporter.take() {
            let time = FLUSH_SPANS.min(self.grace).max(Duration::from_secs(1));
            exporter.flush(time).await;
        }
        let seen = self.scrapes.load(Ordering::Acquire);
        if self.final_scrape && seen > 0 {
            let collected = async {
                while self.scrapes.load(Ordering::Acquire) == seen {
                    tokio::time::sleep(FINAL_SCRAPE_POLL).await;
                }
            };
            if tokio::time::timeout_at(deadline, collected).await.is_err() {
                tracing::warn!("no scrape after the drain within the grace period: the last counts are not collected");
            }
        }
        self.admin_stop.send_replace(true);
        let _ = self.admin_listener.await;
        for task in self.background {
            task.abort();
        }
    }
}

/// The most a drained proxy waits for its last spans to be exported.
const FLUSH_SPANS: Duration = Duration::from_secs(5);

/// A listener's connections, counted in its metrics.
struct Listener(ListenerMetrics, weft_metrics::TcpMetrics);

impl ConnStats for Listener {
    fn opened(&self) {
        self.0.accepted.inc();
        self.0.open.inc();
    }

    fn closed(&self) {
        self.0.open.dec();
    }

    fn read(&self, bytes: usize) {
        self.0.read_bytes.inc_by(bytes as u64);
    }

    fn written(&self, bytes: usize) {
        self.0.write_bytes.inc_by(bytes as u64);
    }

    fn tls_accepted(&self) {
        self.0.tls_accepted.inc();
    }

    fn tls_refused(&self, reason: &'static str) {
        self.1.tls_refused(reason);
    }

    fn h2_abuse(&self, reason: &'static str) {
        self.1.h2_abuse(self.0.direction, reason);
    }

    fn overloaded(&self) {
        self.0.overloaded.inc();
    }
}
