//! The proxy's command line, shared by `weft proxy` and the standalone `weft-proxy`: config
//! from a file, every setting overridable by a flag or `WEFT_*` variable; and [`run`], the
//! one entry point both binaries call.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use clap::Args;
use weft_core::config::{ConfigError, ProxyConfig};
use weft_core::duration;

use crate::proxy::{Proxy, StartError};

/// The defaults every flag's help names: the config model's own.
static DEFAULTS: LazyLock<ProxyConfig> = LazyLock::new(ProxyConfig::default);

fn help(what: &str, default: impl std::fmt::Display) -> String {
    format!("{what} [default: {default}]")
}

fn help_duration(what: &str, default: Duration) -> String {
    help(what, duration::format(&default))
}

#[derive(Args)]
pub struct ProxyArgs {
    /// Proxy config file (TOML). Flags and environment variables override it.
    #[arg(long, env = "WEFT_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, env = "WEFT_NODE", help = help("This node's name, in logs and metrics", &DEFAULTS.node))]
    node: Option<String>,
    #[arg(long, env = "WEFT_OUTBOUND", help = help("Outbound listener: apps send here (http_proxy)", DEFAULTS.outbound.listen))]
    outbound: Option<SocketAddr>,
    #[arg(long, env = "WEFT_INBOUND", help = help("Inbound listener: peer proxies send here", DEFAULTS.inbound.listen))]
    inbound: Option<SocketAddr>,
    /// The inbound address peers know this node by [default: --inbound].
    #[arg(long, env = "WEFT_INBOUND_ADVERTISE")]
    inbound_advertise: Option<SocketAddr>,
    #[arg(long, env = "WEFT_ADMIN", help = help("Admin listener: /metrics, /ready, /shutdown …", DEFAULTS.admin.listen))]
    admin: Option<SocketAddr>,
    /// Discovery file (TOML), watched for changes.
    #[arg(long, env = "WEFT_DISCOVERY_FILE")]
    discovery_file: Option<PathBuf>,
    /// Learn endpoints from `weft control` at this address (host:port) instead of a file.
    #[arg(long, env = "WEFT_CONTROL_PLANE", conflicts_with = "discovery_file")]
    control_plane: Option<String>,
    /// Mesh identity from the control plane: its trust anchors (PEM). Turns on mutual TLS
    /// between proxies and to the control plane.
    #[arg(long, env = "WEFT_TRUST_ANCHORS", requires = "identity_token_file")]
    trust_anchors: Option<PathBuf>,
    /// The token proving this node to the control plane.
    #[arg(long, env = "WEFT_IDENTITY_TOKEN_FILE")]
    identity_token_file: Option<PathBuf>,
    #[arg(long, env = "WEFT_TRUST_DOMAIN", help = help("The mesh's trust domain", &DEFAULTS.identity.trust_domain))]
    trust_domain: Option<String>,
    #[arg(long, env = "WEFT_IDENTITY_NAMESPACE", help = help("The namespace weft runs in, as identities name it", &DEFAULTS.identity.namespace))]
    identity_namespace: Option<String>,
    /// The account this proxy is certified as when it is no node's proxy (`weft-ingress`;
    /// `weft ingress` sets it) [default: the node's proxy].
    #[arg(long, env = "WEFT_IDENTITY_ACCOUNT")]
    identity_account: Option<String>,
    /// While a mesh moves to mutual TLS: take plaintext from peers too, and dial a peer that
    /// does not speak TLS in plaintext.
    #[arg(long, env = "WEFT_ALLOW_PLAINTEXT_PEERS")]
    allow_plaintext_peers: bool,
    #[arg(long, env = "WEFT_CONNECT_TIMEOUT", value_parser = duration::parse, help = help_duration("Upstream connect timeout, e.g. 1s or 250ms", DEFAULTS.http.connect_timeout))]
    connect_timeout: Option<Duration>,
    #[arg(long, env = "WEFT_HEADER_READ_TIMEOUT", value_parser = duration::parse, help = help_duration("Time a client has to send a request head", DEFAULTS.http.header_read_timeout))]
    header_read_timeout: Option<Duration>,
    #[arg(long, env = "WEFT_MAX_HEADER_BYTES", help = help("Largest request head accepted, in bytes", DEFAULTS.http.max_header_bytes))]
    max_header_bytes: Option<usize>,
    #[arg(long, env = "WEFT_SHUTDOWN_GRACE", value_parser = duration::parse, help = help_duration("Grace period for in-flight requests on shutdown", DEFAULTS.http.shutdown_grace))]
    shutdown_grace: Option<Duration>,
    #[arg(long, env = "WEFT_POOL_MAX_IDLE", help = help("Most idle HTTP/1.1 connections kept per endpoint", DEFAULTS.http.pool_max_idle))]
    pool_max_idle: Option<usize>,
    #[arg(long, env = "WEFT_NAME_SUFFIXES", value_delimiter = ',', help = help("Domain suffixes stripped to find a service name, comma-separated", DEFAULTS.names.suffixes.join(",")))]
    name_suffixes: Option<Vec<String>>,
    /// Ingress listener for callers outside the mesh, routed by `[[ingress.hosts]]` in the
    /// config file [default: none].
    #[arg(long, env = "WEFT_INGRESS")]
    ingress: Option<SocketAddr>,
    /// The ingress's TLS certificate chain (PEM), reloaded when it changes.
    #[arg(long, env = "WEFT_INGRESS_CERT", requires = "ingress_key")]
    ingress_cert: Option<PathBuf>,
    /// The ingress's TLS private key (PEM).
    #[arg(long, env = "WEFT_INGRESS_KEY", requires = "ingress_cert")]
    ingress_key: Option<PathBuf>,
    /// The ingress's access log, one JSON line per request: a file, or `-` for stdout.
    #[arg(long, env = "WEFT_INGRESS_ACCESS_LOG")]
    ingress_access_log: Option<PathBuf>,
    /// Peers whose `weft-ctx-override` reaches this node's apps, by mesh identity, comma-
    /// separated; a trailing `*` matches any rest [default: none].
    #[arg(long, env = "WEFT_OVERRIDE_PEERS", value_delimiter = ',')]
    override_peers: Option<Vec<String>>,
    #[arg(long, env = "WEFT_MAX_HOPS", help = help("Proxy hops a request may make before it is taken for a loop (508)", DEFAULTS.context.max_hops))]
    max_hops: Option<u32>,
    /// An OTLP/gRPC collector (HOST:PORT) to export spans to: turns tracing on [default: off].
    #[arg(long, env = "WEFT_OTLP")]
    otlp: Option<String>,
    #[arg(long, env = "WEFT_TRACE_SAMPLE_RATE", help = help("Share of new traces sampled, 0 to 1; failed and slow requests are kept regardless", DEFAULTS.tracing.sample_rate))]
    trace_sample_rate: Option<f64>,
    /// Runtime worker threads [default: one per CPU].
    #[arg(long, env = "WEFT_WORKER_THREADS")]
    worker_threads: Option<usize>,
    #[arg(long, env = "WEFT_POOL_IDLE_TIMEOUT", value_parser = duration::parse, help = help_duration("Idle upstream connections close after this long", DEFAULTS.http.pool_idle_timeout))]
    pool_idle_timeout: Option<Duration>,
}

/// Why the proxy could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("installing the SIGTERM handler: {0}")]
    Signal(std::io::Error),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("an ingress needs a listener: --ingress ADDR, or ingress.listen and [[ingress.hosts]] in --config")]
    NoIngress,
}

impl ProxyArgs {
    /// The config file's settings (or the defaults), with the flags over them.
    fn config(self) -> Result<ProxyConfig, ConfigError> {
        let mut c = match &self.config {
            Some(path) => ProxyConfig::load(path)?,
            None => ProxyConfig::default(),
        };
        set(&mut c.node, self.node);
        set(&mut c.outbound.listen, self.outbound);
        set(&mut c.inbound.listen, self.inbound);
        if self.inbound_advertise.is_some() {
            c.inbound.advertise = self.inbound_advertise;
        }
        set(&mut c.admin.listen, self.admin);
        if self.discovery_file.is_some() {
            c.discovery.file = self.discovery_file;
        }
        if self.control_plane.is_some() {
            c.discovery.control_plane = self.control_plane;
        }
        if self.trust_anchors.is_some() {
            c.identity.trust_anchors = self.trust_anchors;
        }
        if self.identity_token_file.is_some() {
            c.identity.token_file = self.identity_token_file;
        }
        set(&mut c.identity.trust_domain, self.trust_domain);
        set(&mut c.identity.namespace, self.identity_namespace);
        c.identity.allow_plaintext |= self.allow_plaintext_peers;
        if self.identity_account.is_some() {
            c.identity.account = self.identity_account;
        }
        set(&mut c.http.connect_timeout, self.connect_timeout);
        set(&mut c.http.header_read_timeout, self.header_read_timeout);
        set(&mut c.http.max_header_bytes, self.max_header_bytes);
        set(&mut c.http.shutdown_grace, self.shutdown_grace);
        set(&mut c.http.pool_idle_timeout, self.pool_idle_timeout);
        set(&mut c.http.pool_max_idle, self.pool_max_idle);
        set(&mut c.names.suffixes, self.name_suffixes);
        set(&mut c.context.override_peers, self.override_peers);
        set(&mut c.context.max_hops, self.max_hops);
        if self.otlp.is_some() {
            c.tracing.otlp = self.otlp;
        }
        set(&mut c.tracing.sample_rate, self.trace_sample_rate);
        if self.ingress.is_some() {
            c.ingress.listen = self.ingress;
        }
        if self.ingress_cert.is_some() {
            c.ingress.tls_cert = self.ingress_cert;
            c.ingress.tls_key = self.ingress_key;
        }
        if self.ingress_access_log.is_some() {
            c.ingress.access_log = self.ingress_access_log;
        }
        let origin = self.config.unwrap_or_else(|| PathBuf::from("(flags)"));
        c.validate(&origin)?;
        Ok(c)
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// Runs the proxy until SIGTERM, an interrupt or the admin API's shutdown, then drains.
pub fn run(args: ProxyArgs) -> Result<(), RunError> {
    let threads = args.worker_threads;
    let config = args.config()?;
    serve(config, threads)
}

/// `weft ingress`: a proxy whose job is its ingress listener, which it must have.
pub fn run_ingress(args: ProxyArgs) -> Result<(), RunError> {
    let threads = args.worker_threads;
    let mut config = args.config()?;
    if config.ingress.listen.is_none() {
        return Err(RunError::NoIngress);
    }
    // An ingress is no node's proxy: with identities on it is certified as the ingress.
    config
        .identity
        .account
        .get_or_insert_with(|| weft_identity::INGRESS_ACCOUNT.to_string());
    serve(config, threads)
}

fn serve(config: ProxyConfig, threads: Option<usize>) -> Result<(), RunError> {
    let runtime = match threads {
        // One thread: no work stealing, no cross-thread wake-ups.
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
    .map_err(RunError::Runtime)?;
    runtime.block_on(async move {
        let handle = Proxy::start(config).await?;
        let mut draining = handle.draining();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(RunError::Signal)?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: draining"),
            _ = draining.wait_for(|d| *d) => {}
        }
        handle.shutdown();
        handle.wait().await;
        tracing::info!("drained; bye");
        Ok(())
    })
}

/// Logs to stderr, filtered by `WEFT_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
