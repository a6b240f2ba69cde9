//! `weft install`: prints the Kubernetes manifests (`weft install | kubectl apply -f -`).

use clap::Args;
use weft_control::install::{self, CaSource, InstallOptions};

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
    })?;
    print!("{text}");
    Ok(())
}
