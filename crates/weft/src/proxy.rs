//! `weft proxy` and `weft-proxy`: config from a file, every setting overridable by a flag or
//! `WEFT_*` variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use weft_core::config::ProxyConfig;
use weft_core::duration;
use weft_proxy::Proxy;

#[derive(Args)]
pub struct ProxyArgs {
    /// Proxy config file (TOML). Flags and environment variables override it.
    #[arg(long, env = "WEFT_CONFIG")]
    config: Option<PathBuf>,
    /// This node's name, in logs and metrics.
    #[arg(long, env = "WEFT_NODE")]
    node: Option<String>,
    /// Outbound listener: apps send here (http_proxy) [default: 0.0.0.0:4140].
    #[arg(long, env = "WEFT_OUTBOUND")]
    outbound: Option<SocketAddr>,
    /// Inbound listener: peer proxies send here [default: 0.0.0.0:4141].
    #[arg(long, env = "WEFT_INBOUND")]
    inbound: Option<SocketAddr>,
    /// The inbound address peers know this node by [default: --inbound].
    #[arg(long, env = "WEFT_INBOUND_ADVERTISE")]
    inbound_advertise: Option<SocketAddr>,
    /// Admin listener: /metrics, /ready, /shutdown … [default: 127.0.0.1:9990].
    #[arg(long, env = "WEFT_ADMIN")]
    admin: Option<SocketAddr>,
    /// Discovery file (TOML), watched for changes.
    #[arg(long, env = "WEFT_DISCOVERY_FILE")]
    discovery_file: Option<PathBuf>,
    /// Learn endpoints from `weft control` at this address (host:port) instead of a file.
    #[arg(long, env = "WEFT_CONTROL_PLANE", conflicts_with = "discovery_file")]
    control_plane: Option<String>,
    /// Upstream connect timeout, e.g. 1s or 250ms [default: 1s].
    #[arg(long, env = "WEFT_CONNECT_TIMEOUT", value_parser = duration::parse)]
    connect_timeout: Option<std::time::Duration>,
    /// Time a client has to send a request head [default: 10s].
    #[arg(long, env = "WEFT_HEADER_READ_TIMEOUT", value_parser = duration::parse)]
    header_read_timeout: Option<std::time::Duration>,
    /// Largest request head accepted, in bytes [default: 65536].
    #[arg(long, env = "WEFT_MAX_HEADER_BYTES")]
    max_header_bytes: Option<usize>,
    /// Grace period for in-flight requests on shutdown [default: 30s].
    #[arg(long, env = "WEFT_SHUTDOWN_GRACE", value_parser = duration::parse)]
    shutdown_grace: Option<std::time::Duration>,
    /// Most idle HTTP/1.1 connections kept per endpoint [default: 256].
    #[arg(long, env = "WEFT_POOL_MAX_IDLE")]
    pool_max_idle: Option<usize>,
    /// Domain suffixes stripped to find a service name, comma-separated
    /// [default: .default.svc.cluster.local,.default.svc,.default].
    #[arg(long, env = "WEFT_NAME_SUFFIXES", value_delimiter = ',')]
    name_suffixes: Option<Vec<String>>,
    /// Runtime worker threads [default: one per CPU].
    #[arg(long, env = "WEFT_WORKER_THREADS")]
    worker_threads: Option<usize>,
    /// Idle upstream connections close after this long [default: 60s].
    #[arg(long, env = "WEFT_POOL_IDLE_TIMEOUT", value_parser = duration::parse)]
    pool_idle_timeout: Option<std::time::Duration>,
}

impl ProxyArgs {
    fn config(self) -> anyhow::Result<ProxyConfig> {
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
        set(&mut c.http.connect_timeout, self.connect_timeout);
        set(&mut c.http.header_read_timeout, self.header_read_timeout);
        set(&mut c.http.max_header_bytes, self.max_header_bytes);
        set(&mut c.http.shutdown_grace, self.shutdown_grace);
        set(&mut c.http.pool_idle_timeout, self.pool_idle_timeout);
        set(&mut c.http.pool_max_idle, self.pool_max_idle);
        set(&mut c.names.suffixes, self.name_suffixes);
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

pub fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let threads = args.worker_threads;
    let config = args.config()?;
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
    .context("starting the runtime")?;
    runtime.block_on(async move {
        let handle = Proxy::start(config).await?;
        let mut draining = handle.draining();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: draining"),
            _ = draining.wait_for(|d| *d) => {}
        }
        handle.shutdown();
        handle.wait().await;
        tracing::info!("drained; bye");
        anyhow::Ok(())
    })
}
