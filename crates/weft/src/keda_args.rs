//! `weft dashboard`'s KEDA external scaler: where it listens, the certificate it presents,
//! and who may call — on Kubernetes, only KEDA's operator, by a client certificate from the
//! CA the install made (or cert-manager's).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use weft_dashboard::keda::{ClientCa, KedaTls};
use weft_dashboard::KedaConfig;
use weft_identity::edge::EdgeCert;

#[derive(Args)]
pub struct KedaArgs {
    /// Serve KEDA's external scaler here (gRPC): KEDA then scales on the mesh's figures
    /// where another server holds the external metrics API. Over TLS with --keda-tls-cert,
    /// plaintext without.
    #[arg(long)]
    keda_listen: Option<SocketAddr>,
    /// The certificate the scaler presents (PEM; read again every minute). Its names must
    /// include the host of the trigger's `scalerAddress`.
    #[arg(long, requires_all = ["keda_listen", "keda_tls_key"])]
    keda_tls_cert: Option<PathBuf>,
    /// The key of --keda-tls-cert (PEM).
    #[arg(long, requires = "keda_tls_cert")]
    keda_tls_key: Option<PathBuf>,
    /// Take only clients with a certificate from this CA (PEM; read again every minute):
    /// KEDA's operator, given the client certificate by a TriggerAuthentication.
    #[arg(long, requires = "keda_tls_cert")]
    keda_client_ca: Option<PathBuf>,
    /// With --keda-client-ca: the common names a client's certificate may have
    /// (comma-separated; any when none).
    #[arg(long, value_delimiter = ',', requires = "keda_client_ca")]
    keda_allowed_names: Vec<String>,
}

/// The scaler's configuration, when it is served.
pub fn config(args: KedaArgs) -> anyhow::Result<Option<KedaConfig>> {
    let Some(listen) = args.keda_listen else {
        return Ok(None);
    };
    let tls = match (&args.keda_tls_cert, &args.keda_tls_key) {
        (Some(cert), Some(key)) => {
            let cert = EdgeCert::load(cert, key)
                .map_err(|e| anyhow::anyhow!("the KEDA scaler's certificate: {e}"))?;
            let clients = match &args.keda_client_ca {
                Some(ca) => Some(
                    ClientCa::load(ca, args.keda_allowed_names)
                        .map_err(|e| anyhow::anyhow!("the KEDA scaler's client CA: {e}"))?,
                ),
                None => {
                    tracing::warn!(
                        "the KEDA scaler takes any client: pass --keda-client-ca so only KEDA's operator may ask"
                    );
                    None
                }
            };
            Some(KedaTls { cert, clients })
        }
        _ => {
            tracing::warn!(
                "the KEDA scaler serves plaintext: anyone on the network can read the figures; pass --keda-tls-cert, --keda-tls-key and --keda-client-ca"
            );
            None
        }
    };
    Ok(Some(KedaConfig { listen, tls }))
}
