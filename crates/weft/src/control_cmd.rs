//! `weft control`: the control plane, watching Kubernetes (or a discovery file) and serving
//! the Destination API, and with `--identity-dir` the mesh's CA.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use weft_control::identity::IdentityConfig;
use weft_control::{ControlConfig, Source};
use weft_core::{duration, ports};

#[derive(Args)]
pub struct ControlArgs {
    /// Destination API (gRPC) listener.
    #[arg(long, env = "WEFT_CONTROL_LISTEN", default_value_t = ports::any(ports::CONTROL))]
    listen: SocketAddr,
    /// Admin listener: /live, /ready, /metrics.
    #[arg(long, env = "WEFT_ADMIN", default_value_t = ports::any(ports::ADMIN))]
    admin: SocketAddr,
    /// kubeconfig to use [default: in-cluster config, then $KUBECONFIG, then ~/.kube/config].
    #[arg(long, env = "WEFT_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Serve endpoints from this discovery file (the proxies' format) instead of
    /// Kubernetes: for VMs, tests and machines without a cluster.
    #[arg(long, env = "WEFT_DISCOVERY_FILE", conflicts_with = "kubeconfig")]
    discovery_file: Option<PathBuf>,
    /// Be the mesh's CA with the anchors and issuer in this folder (`weft identity init`
    /// writes one); the gRPC listener is then TLS and answers only proxies.
    #[arg(long, env = "WEFT_IDENTITY_DIR")]
    identity_dir: Option<PathBuf>,
    #[arg(long, env = "WEFT_TRUST_DOMAIN", default_value = "cluster.local")]
    trust_domain: String,
    /// How long proxies' leaf certificates live; they renew at 70 % of it.
    #[arg(long, env = "WEFT_LEAF_LIFETIME", value_parser = duration::parse, default_value = "24h")]
    leaf_lifetime: Duration,
    /// Proxies prove their node with the tokens in this file (`NODE TOKEN` per line);
    /// without it, on Kubernetes, with projected ServiceAccount tokens (TokenReview).
    #[arg(long, env = "WEFT_BOOTSTRAP_TOKENS", requires = "identity_dir")]
    bootstrap_tokens: Option<PathBuf>,
    /// Namespace of services named without one (`world`).
    #[arg(long, env = "WEFT_DEFAULT_NAMESPACE", default_value = "default")]
    default_namespace: String,
    #[arg(long, env = "WEFT_CLUSTER_DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,
    /// Namespace weft is installed in: only the weft-proxy DaemonSet's pods there are taken
    /// as nodes' proxies (the manifest sets it to the control plane's own).
    #[arg(long, env = "WEFT_PROXY_NAMESPACE", default_value = weft_control::install::DEFAULT_NAMESPACE)]
    proxy_namespace: String,
    /// Destination streams open at once, over every proxy (one per service each node's apps
    /// call); more are refused with RESOURCE_EXHAUSTED and counted.
    #[arg(long, env = "WEFT_MAX_STREAMS", default_value_t = 50_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_streams: u32,
}

/// Leaves shorter than this would renew faster than a control plane can be counted on; longer
/// than this, a stolen key stays useful too long.
const LEAF_LIFETIME_RANGE: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_secs(30 * 24 * 3600));

pub fn run(args: ControlArgs) -> anyhow::Result<()> {
    let (min, max) = LEAF_LIFETIME_RANGE;
    debug_assert_eq!((min.as_secs(), max.as_secs() / 3600), (10, 720));
    anyhow::ensure!(
        (min..=max).contains(&args.leaf_lifetime),
        "--leaf-lifetime {} is outside 10s to 720h (30 days)",
        duration::format(&args.leaf_lifetime),
    );
    let identity = args.identity_dir.map(|dir| IdentityConfig {
        dir,
        trust_domain: args.trust_domain,
        leaf_lifetime: args.leaf_lifetime,
        bootstrap_tokens: args.bootstrap_tokens,
    });
    let config = ControlConfig {
        listen: args.listen,
        admin: args.admin,
        source: match args.discovery_file {
            Some(path) => Source::File(path),
            None => Source::Kubernetes(args.kubeconfig),
        },
        identity,
        default_namespace: args.default_namespace,
        proxy_namespace: args.proxy_namespace,
        cluster_domain: args.cluster_domain,
        max_streams: args.max_streams as usize,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .context("installing the SIGTERM handler")?;
            let stop = async move {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: stopping"),
                }
            };
            weft_control::run(config, stop).await?;
            Ok(())
        })
}
