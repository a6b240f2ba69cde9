//! `weft dashboard`'s external metrics API: where it listens, the certificate it presents,
//! and who may call — on Kubernetes, only the API server's aggregator, known by the CA and
//! names the cluster publishes (read again every few minutes, so a rotated front-proxy CA
//! is followed).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use weft_identity::callers::Callers;
use weft_identity::edge::EdgeCert;

/// How often the aggregator's CA is read from the cluster again.
const REREAD: Duration = Duration::from_secs(300);

#[derive(Args)]
pub struct MetricsApiArgs {
    /// Serve Kubernetes' external metrics API (external.metrics.k8s.io) here, over TLS:
    /// an HPA then scales on the mesh's figures (see `weft install --autoscaling`).
    #[arg(long)]
    metrics_api_listen: Option<SocketAddr>,
    /// The certificate the external metrics API presents (PEM; read again every minute).
    /// Without it, a self-signed one is made at start.
    #[arg(long, requires_all = ["metrics_api_listen", "metrics_api_tls_key"])]
    metrics_api_tls_cert: Option<PathBuf>,
    /// The key of --metrics-api-tls-cert (PEM).
    #[arg(long, requires = "metrics_api_tls_cert")]
    metrics_api_tls_key: Option<PathBuf>,
    /// Take only callers with a client certificate from these CAs (PEM): the API server's
    /// aggregator (its --requestheader-client-ca-file).
    #[arg(
        long,
        requires = "metrics_api_listen",
        conflicts_with = "metrics_api_kube_auth"
    )]
    metrics_api_client_ca: Option<PathBuf>,
    /// With --metrics-api-client-ca: the common names a caller's certificate may have
    /// (comma-separated; any when none).
    #[arg(long, value_delimiter = ',', requires = "metrics_api_client_ca")]
    metrics_api_allowed_names: Vec<String>,
    /// Take only the API server's aggregator, as the cluster names it in the ConfigMap
    /// kube-system/extension-apiserver-authentication (in-cluster credentials, or
    /// --kubeconfig).
    #[arg(long, requires = "metrics_api_listen")]
    metrics_api_kube_auth: bool,
    /// The kubeconfig --metrics-api-kube-auth reads the cluster with.
    #[arg(long, requires = "metrics_api_kube_auth")]
    kubeconfig: Option<PathBuf>,
    /// The namespace the dashboard runs in: its Service's names go in a self-signed
    /// certificate.
    #[arg(long, env = "WEFT_IDENTITY_NAMESPACE", default_value = "weft")]
    metrics_api_namespace: String,
}

/// The external metrics API's configuration, when it is served; with --metrics-api-kube-auth
/// a task keeps the aggregator's CA current until `stop`.
pub async fn start(
    args: MetricsApiArgs,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<weft_dashboard::MetricsApiConfig>> {
    let Some(listen) = args.metrics_api_listen else {
        return Ok(None);
    };
    let cert = match (&args.metrics_api_tls_cert, &args.metrics_api_tls_key) {
        (Some(cert), Some(key)) => EdgeCert::load(cert, key),
        _ => {
            let ns = &args.metrics_api_namespace;
            let names = ["weft-dashboard".to_string(), format!("weft-dashboard.{ns}")]
                .into_iter()
                .chain([format!("weft-dashboard.{ns}.svc"), "localhost".into()])
                .collect();
            EdgeCert::self_signed(names)
        }
    }
    .map_err(|e| anyhow::anyhow!("the external metrics API's certificate: {e}"))?;
    let callers = if let Some(ca) = &args.metrics_api_client_ca {
        let pem =
            std::fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?;
        let callers = Callers::new(&pem, args.metrics_api_allowed_names)
            .map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?;
        Some(callers)
    } else if args.metrics_api_kube_auth {
        Some(from_cluster(args.kubeconfig, stop).await?)
    } else {
        tracing::warn!(
            "the external metrics API takes any caller: pass --metrics-api-kube-auth on Kubernetes"
        );
        None
    };
    Ok(Some(weft_dashboard::MetricsApiConfig {
        listen,
        cert,
        callers,
    }))
}

/// The aggregator's CA and names from the cluster now, and again every [`REREAD`]; a read
/// that fails keeps the last.
async fn from_cluster(
    kubeconfig: Option<PathBuf>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Arc<Callers>> {
    use weft_control::extension_auth::request_header;
    let client = weft_control::kube_client(kubeconfig.as_deref()).await?;
    let first = request_header(client.clone()).await?;
    let callers = Callers::new(&first.client_ca, first.allowed_names)
        .map_err(|e| anyhow::anyhow!("the aggregator's CA: {e}"))?;
    let kept = Arc::clone(&callers);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REREAD) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let read = request_header(client.clone())
                .await
                .map_err(|e| e.to_string());
            if let Err(e) = read.and_then(|r| kept.update(&r.client_ca, r.allowed_names)) {
                tracing::warn!(error = %e, "the aggregator's CA was not read again; the last stays");
            }
        }
    });
    Ok(callers)
}
