//! `weft control`, the Service Mesh API: watches Kubernetes (Services, EndpointSlices, Pods,
//! Nodes, HTTPRoutes, GRPCRoutes) once — or, without Kubernetes, a discovery file — and serves every proxy's
//! Destination API streams from that one view; with identity on, it is the mesh's CA too.
//!
//! Layout:
//! - [`cluster`]: the records kept of each Kubernetes object, and endpoint derivation.
//! - [`kube_watch`]: the watchers feeding the index; [`gateway`]: Gateway API routes
//!   (GAMMA) read into weft's routes, and their status.
//! - [`index`]: per-service answers that streams follow; [`file_source`]: the same from a
//!   discovery file.
//! - [`server`]: the Destination gRPC service.
//! - [`identity`]: the Identity API, its CA and tokens, and the TLS its gRPC is served over.
//! - [`admin`], [`metrics`]: /live, /ready, /metrics; [`calendar`]: dates and times.
//! - [`route_edit`]: an HTTPRoute's weights changed, for `weft shift`.
//! - [`extension_auth`]: the aggregator's CA, for the dashboard's external metrics API.
//! - [`install`]: the manifests `weft install` prints; [`check`]: `weft check`.
#![forbid(unsafe_code)]

pub mod admin;
pub use weft_core::calendar;
pub mod check;
pub mod cluster;
pub mod extension_auth;
pub mod file_source;
pub mod gateway;
pub mod identity;
pub mod index;
pub mod install;
pub mod kube_watch;
pub mod metrics;
pub mod route_edit;
pub mod server;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use weft_api::{DestinationServer, IdentityServer};

#[derive(Clone, Debug)]
pub struct ControlConfig {
    /// The Destination API (gRPC).
    pub listen: SocketAddr,
    /// /live, /ready, /metrics.
    pub admin: SocketAddr,
    /// Where services' endpoints come from.
    pub source: Source,
    /// Where names without a namespace (`world`) are looked up.
    pub default_namespace: String,
    /// Where weft is installed: only its DaemonSet's pods there are nodes' proxies.
    pub proxy_namespace: String,
    pub cluster_domain: String,
    /// The mesh's CA and TLS on the gRPC listener; `None`: plaintext, no Identity API.
    pub identity: Option<identity::IdentityConfig>,
    /// Destination streams open at once, over every connection: each holds a task and a
    /// subscription, so a flood of them is refused rather than let grow memory.
    pub max_streams: usize,
}

/// Streams one gRPC connection may have open: a proxy opens one per service its node's
/// apps call, and follows at most 2 000 (weft-discovery's cap; room left for reconnects).
const MAX_STREAMS_PER_CONNECTION: u32 = 4096;
/// Streams a client may reset before they are accepted, and streams this server may reset
/// for a client's errors, before the connection is closed (rapid reset, CVE-2023-44487):
/// tonic passes no local-reset limit to hyper, which then has none.
const MAX_PENDING_RESETS: usize = 20;
const MAX_LOCAL_ERROR_RESETS: usize = 256;
/// A Destination or Certify request's headers are a few hundred bytes.
const MAX_HEADER_LIST: u32 = 16 * 1024;

#[derive(Clone, Debug)]
pub enum Source {
    /// Kubernetes: the kubeconfig file, or `None` for in-cluster config, then
    /// `$KUBECONFIG` / `~/.kube/config`.
    Kubernetes(Option<PathBuf>),
    /// A discovery file (the proxies' format), watched.
    File(PathBuf),
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
    #[error(transparent)]
    Discovery(#[from] weft_discovery::DiscoveryError),
    #[error("identity: {0}")]
    Identity(String),
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
    let bind = |listener: &'static str, addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ControlError::Bind {
                listener,
                addr,
                source,
            })
    };
    let metrics = Arc::new(metrics::Metrics::default());
    let mut background = Vec::new();
    let mut kube = None;
    let answers: Arc<dyn index::Answers> = match &config.source {
        Source::Kubernetes(kubeconfig) => {
            let client = kube_client(kubeconfig.as_deref()).await?;
            kube = Some(client.clone());
            let index = index::Index::new(&config.proxy_namespace);
            background.push(tokio::spawn(kube_watch::run(
                client,
                Arc::clone(&index),
                Arc::clone(&metrics),
                config.default_namespace.clone(),
            )));
            index
        }
        Source::File(path) => file_source::FileAnswers::load(path, &config.default_namespace)?,
    };
    let signer = match &config.identity {
        Some(id) => {
            let signer = load_signer(id, &config.proxy_namespace)?;
            background.push(tokio::spawn(Arc::clone(&signer).run()));
            Some(signer)
        }
        None => None,
    };
    let grpc = bind("destination", config.listen).await?;
    let admin = bind("admin", config.admin).await?;
    let (grpc_addr, admin_addr) = (
        grpc.local_addr().expect("bound listener"),
        admin.local_addr().expect("bound listener"),
    );
    let router = admin::router(Arc::clone(&answers), Arc::clone(&metrics), signer.clone());
    background.push(tokio::spawn(async move {
        // Served until the control plane ends (and this task with it).
        let (_serving, stop) = tokio::sync::watch::channel(false);
        weft_metrics::serve::serve(admin, router, stop).await;
    }));
    tracing::info!(
        destination = %grpc_addr,
        admin = %admin_addr,
        tls = signer.is_some(),
        "weft control listening"
    );

    let destination = DestinationServer::new(server::DestinationService {
        index: answers,
        metrics: Arc::clone(&metrics),
        default_namespace: config.default_namespace,
        cluster_domain: config.cluster_domain,
        require_proxy: signer.is_some(),
        open: Arc::new(tokio::sync::Semaphore::new(config.max_streams)),
    });
    let mut server = tonic::transport::Server::builder()
        // Finds proxies that vanished without closing their streams.
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_RESETS))
        .http2_max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        .http2_max_header_list_size(MAX_HEADER_LIST);
    let result = match (signer, config.identity) {
        (Some(signer), Some(id)) => {
            let proxies = weft_identity::Identity::workload(
                signer.trust_domain(),
                &config.proxy_namespace,
                identity::PROXY_ACCOUNT,
            )
            .map_err(|e| ControlError::Identity(e.to_string()))?;
            let tls = weft_identity::tls::control_server_config(
                signer.credentials(),
                signer.bundle(),
                proxies,
            )
            .map_err(|e| ControlError::Identity(e.to_string()))?;
            let authenticate = match (id.bootstrap_tokens, kube) {
                (Some(path), _) => identity::tokens::Authenticate::Bootstrap(path),
                (None, Some(client)) => identity::tokens::Authenticate::Kubernetes {
                    client,
                    namespace: config.proxy_namespace.clone(),
                },
                (None, None) => {
                    return Err(ControlError::Identity(
                        "without Kubernetes, proxies prove their node with bootstrap tokens: give --bootstrap-tokens".into(),
                    ))
                }
            };
            let certify = IdentityServer::new(identity::certify::CertifyService {
                signer,
                authenticate,
                namespace: config.proxy_namespace,
                metrics,
            })
            .max_decoding_message_size(identity::certify::MAX_REQUEST_BYTES);
            server
                .add_service(destination)
                .add_service(certify)
                .serve_with_incoming_shutdown(identity::incoming::incoming(grpc, tls), shutdown)
                .await
        }
        _ => {
            server
                .add_service(destination)
                .serve_with_incoming_shutdown(incoming(grpc), shutdown)
                .await
        }
    };
    for task in background {
        task.abort();
    }
    result.map_err(ControlError::from)
}

/// The CA from its folder, and the control plane's own identity in it.
fn load_signer(
    config: &identity::IdentityConfig,
    namespace: &str,
) -> Result<Arc<identity::signer::Signer>, ControlError> {
    let err = |e: &dyn std::fmt::Display| ControlError::Identity(e.to_string());
    let td = weft_identity::TrustDomain::new(&config.trust_domain).map_err(|e| err(&e))?;
    let own = weft_identity::Identity::workload(&td, namespace, identity::CONTROL_ACCOUNT)
        .map_err(|e| err(&e))?;
    identity::signer::Signer::load(&config.dir, td, config.leaf_lifetime, own).map_err(|e| err(&e))
}
