//! `weft control`: the control plane, watching Kubernetes and serving the Destination API.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use weft_control::ControlConfig;
use weft_core::ports;

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
    /// Namespace of services named without one (`world`).
    #[arg(long, env = "WEFT_DEFAULT_NAMESPACE", default_value = "default")]
    default_namespace: String,
    #[arg(long, env = "WEFT_CLUSTER_DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,
    /// Namespace weft is installed in: only the weft-proxy DaemonSet's pods there are taken
    /// as nodes' proxies (the manifest sets it to the control plane's own).
    #[arg(long, env = "WEFT_PROXY_NAMESPACE", default_value = weft_control::install::DEFAULT_NAMESPACE)]
    proxy_namespace: String,
}

pub fn run(args: ControlArgs) -> anyhow::Result<()> {
    let config = ControlConfig {
        listen: args.listen,
        admin: args.admin,
        kubeconfig: args.kubeconfig,
        default_namespace: args.default_namespace,
        proxy_namespace: args.proxy_namespace,
        cluster_domain: args.cluster_domain,
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
