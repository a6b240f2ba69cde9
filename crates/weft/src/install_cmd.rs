//! `weft install`: prints the Kubernetes manifests (`weft install | kubectl apply -f -`).

use clap::Args;
use weft_control::install::{self, InstallOptions};

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
}

pub fn run(args: InstallArgs) -> anyhow::Result<()> {
    let text = install::render(&InstallOptions {
        namespace: args.namespace,
        image: args.image,
        with_demo: args.with_demo,
    })?;
    print!("{text}");
    Ok(())
}
