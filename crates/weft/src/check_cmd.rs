//! `weft check`: is the mesh on this cluster up? One line per component, exit 1 on a failure.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct CheckArgs {
    /// kubeconfig to use [default: $KUBECONFIG, then ~/.kube/config, then in-cluster].
    #[arg(long, env = "WEFT_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The namespace weft was installed into.
    #[arg(long, default_value = weft_control::install::DEFAULT_NAMESPACE)]
    namespace: String,
}

pub fn run(args: CheckArgs) -> anyhow::Result<std::process::ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(async move {
            let config = weft_control::kube_config(args.kubeconfig.as_deref()).await?;
            let server = config.cluster_url.to_string();
            let client =
                kube::Client::try_from(config).context("building the kubernetes client")?;
            println!("checking weft in namespace {} at {server}", args.namespace);
            let findings = weft_control::check::check(client, &args.namespace).await;
            for f in &findings {
                println!("{f}");
            }
            let failed = findings.iter().filter(|f| !f.ok).count();
            if failed == 0 {
                println!("weft is up");
                Ok(std::process::ExitCode::SUCCESS)
            } else {
                println!("{failed} problem(s) found");
                Ok(std::process::ExitCode::FAILURE)
            }
        })
}
