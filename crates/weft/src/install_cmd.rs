//! `weft install`: prints the Kubernetes manifests (`weft install | kubectl apply -f -`).

use clap::{Args, ValueEnum};
use weft_control::install::{self, Autoscaling, CaSource, InstallOptions};

#[derive(Args)]
pub struct InstallArgs {
    /// Namespace for the control plane, the proxies and the dashboard.
    #[arg(long, default_value = install::DEFAULT_NAMESPACE)]
    namespace: String,
    /// The image every component runs (built from the repository's Dockerfile).
    #[arg(long, default_value = install::DEFAULT_IMAGE)]
    image: String,
    /// Add the hello and world demo apps (in `default`), hello calling world through its
    /// node's proxy.
    #[arg(long)]
    with_demo: bool,
    /// Add the ingress: outside traffic on a LoadBalancer, TLS from the Secret
    /// weft-ingress-tls, routed to mesh services (docs/edges.md).
    #[arg(long)]
    ingress: bool,
    /// The mesh's CA from this folder (`weft identity init`), instead of a new one.
    #[arg(long, conflicts_with = "external_ca")]
    identity_dir: Option<std::path::PathBuf>,
    /// Put no CA in the manifests: the cluster holds it already (docs/identity.md).
    #[arg(long)]
    external_ca: bool,
    /// Proxies take plaintext from peers too, while a mesh moves to mutual TLS.
    #[arg(long)]
    allow_plaintext_peers: bool,
    /// The OTLP/gRPC collector (HOST:PORT) proxies send their spans to: turns tracing on
    /// (docs/tracing.md; deploy/opentelemetry has one).
    #[arg(long)]
    otlp: Option<String>,
    /// The dashboard serves the mesh's figures to autoscalers: the Kubernetes external
    /// metrics API (registered by an APIService, with its RBAC) and KEDA's external scaler,
    /// over TLS with a certificate made now (the Secret weft-dashboard-tls; with
    /// --external-ca the cluster holds it). `--autoscaling=keda`: the scaler only, with
    /// KEDA's client certificate and the ClusterTriggerAuthentication weft-dashboard, where
    /// KEDA or prometheus-adapter already holds the external metrics API
    /// (docs/autoscaling.md).
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "all")]
    autoscaling: Option<AutoscalingArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum AutoscalingArg {
    /// The external metrics API and KEDA's external scaler.
    All,
    /// KEDA's external scaler only.
    Keda,
}

pub fn run(args: InstallArgs) -> anyhow::Result<()> {
    if args.identity_dir.is_none() && !args.external_ca {
        // On stderr, so it shows even when stdout goes to kubectl.
        eprintln!(
            "weft install: these manifests carry a new CA. Applied over an installed mesh they \
             replace its CA in one step and break mutual TLS until every proxy renews: for \
             an upgrade, keep the CA with --identity-dir or --external-ca (docs/identity.md)."
        );
    }
    let text = install::render(&InstallOptions {
        namespace: args.namespace,
        image: args.image,
        with_demo: args.with_demo,
        ingress: args.ingress,
        ca: match (args.identity_dir, args.external_ca) {
            (Some(dir), _) => CaSource::Dir(dir),
            (None, true) => CaSource::External,
            (None, false) => CaSource::Generate,
        },
        allow_plaintext_peers: args.allow_plaintext_peers,
        otlp: args.otlp,
        autoscaling: match args.autoscaling {
            None => Autoscaling::Off,
            Some(AutoscalingArg::All) => Autoscaling::Full,
            Some(AutoscalingArg::Keda) => Autoscaling::KedaOnly,
        },
    })?;
    print!("{text}");
    Ok(())
}
