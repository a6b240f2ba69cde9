//! `weft control`, the Service Mesh API: watches Kubernetes (Services, EndpointSlices, Pods,
//! Nodes) once and serves every proxy's Destination API streams from that one view.
//!
//! Layout:
//! - [`cluster`]: the records kept of each Kubernetes object, and endpoint derivation.
//! - [`kube_watch`]: the four watchers feeding the index.
//! - [`index`]: per-service answers that streams follow.
//! - [`server`]: the Destination gRPC service.
//! - [`admin`], [`metrics`]: /live, /ready, /metrics.
//! - [`install`]: the manifests `weft install` prints; [`check`]: `weft check`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod check;
pub mod cluster;
pub mod index;
pub mod install;
pub mod kube_watch;
pub mod metrics;
pub mod server;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use weft_api::DestinationServer;

#[derive(Clone, Debug)]
pub struct ControlConfig {
    /// The Destination API (gRPC).
    pub listen: SocketAddr,
    /// /live, /ready, /metrics.
    pub admin: SocketAddr,
    /// `None`: in-cluster config, or `$KUBECONFIG` / `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Where names without a namespace (`world`) are looked up.
    pub default_namespace: String,
    /// Where weft is installed: only its DaemonSet's pods there are nodes' proxies.
    pub proxy_namespace: String,
    pub cluster_domain: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("kubernetes client: {0}")]
    Client(String),
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("destination server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Builds a Kubernetes client from a kubeconfig file, or the environment when `None`.
pub async fn kube_client(
    kubeconfig: Option<&std::path::Path>,
) -> Result<kube::Client, ControlError> {
    let config = kube_config(kubeconfig).await?;
    kube::Client::try_from(config).map_err(|e| ControlError::Client(e.to_string()))
}

/// The client configuration: a kubeconfig file, or the environment when `None`.
pub async fn kube_config(
    kubeconfig: Option<&std::path::Path>,
) -> Result<kube::Config, ControlError> {
    Ok(match kubeconfig {
        Some(path) => {
            let err = |e: &dyn std::fmt::Display| ControlError::Kubeconfig {
                path: path.display().to_string(),
                message: e.to_string(),
            };
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(&e))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| err(&e))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| ControlError::Client(e.to_string()))?,
    })
}

/// Accepted connections with Nagle off: updates are small and must not wait for an ACK.
fn incoming(
    listener: TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures_util::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

/// Runs the control plane until `shutdown` resolves.
pub async fn run(
    config: ControlConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControlError> {
    let client = kube_client(config.kubeconfig.as_deref()).await?;
    let bind = |listener: &'static str, addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ControlError::Bind {
                listener,
                addr,
                source,
            })
    };
    let grpc = bind("destination", config.listen).await?;
    let admin = bind("admin", config.admin).await?;
    let (grpc_addr, admin_addr) = (
        grpc.local_addr().expect("bound listener"),
        admin.local_addr().expect("bound listener"),
    );

    let index = index::Index::new(&config.proxy_namespace);
    let metrics = Arc::new(metrics::Metrics::default());
    let watch = tokio::spawn(kube_watch::run(
        client,
        Arc::clone(&index),
        Arc::clone(&metrics),
    ));
    let router = admin::router(Arc::clone(&index), Arc::clone(&metrics));
    let admin_task = tokio::spawn(async move {
        if let Err(e) = axum::serve(admin, router).await {
            tracing::error!(error = %e, "admin listener failed");
        }
    });
    tracing::info!(destination = %grpc_addr, admin = %admin_addr, "weft control listening");

    let service = server::DestinationService {
        index,
        metrics,
        default_namespace: config.default_namespace,
        cluster_domain: config.cluster_domain,
    };
    let result = tonic::transport::Server::builder()
        // Finds proxies that vanished without closing their streams.
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
        .add_service(DestinationServer::new(service))
        .serve_with_incoming_shutdown(incoming(grpc), shutdown)
        .await;
    watch.abort();
    admin_task.abort();
    result.map_err(ControlError::from)
}
