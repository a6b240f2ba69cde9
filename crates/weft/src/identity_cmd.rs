//! `weft identity`: the mesh's CA material and bootstrap tokens, for running the control
//! plane outside Kubernetes (on Kubernetes, `weft install` makes them).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use weft_identity::material::{self, Material};
use weft_identity::TrustDomain;

#[derive(Args)]
pub struct IdentityArgs {
    #[command(subcommand)]
    command: IdentityCommand,
}

#[derive(Subcommand)]
enum IdentityCommand {
    /// Write a new trust anchor and issuer into a folder for `weft control --identity-dir`.
    /// The anchor's key is not kept: to rotate, make a new pair and follow the steps in
    /// docs/identity.md.
    Init {
        /// The folder (made if missing); files already there are not overwritten.
        dir: PathBuf,
        #[arg(long, default_value = "cluster.local")]
        trust_domain: String,
    },
    /// Print a new bootstrap token line (`NODE TOKEN`) for each node named, to append to
    /// the file `weft control --bootstrap-tokens` reads.
    Token {
        #[arg(required_unless_present_any = ["dashboard", "ingress"])]
        nodes: Vec<String>,
        /// Also a line for the dashboard (`sa/weft-dashboard TOKEN`), which proves its own
        /// identity with it.
        #[arg(long)]
        dashboard: bool,
        /// Also a line for the ingress (`sa/weft-ingress TOKEN`).
        #[arg(long)]
        ingress: bool,
    },
}

pub fn run(args: IdentityArgs) -> anyhow::Result<()> {
    match args.command {
        IdentityCommand::Init { dir, trust_domain } => {
            for f in [
                material::ANCHORS_FILE,
                material::ISSUER_FILE,
                material::ISSUER_KEY_FILE,
            ] {
                anyhow::ensure!(
                    !dir.join(f).exists(),
                    "{} exists; not overwritten",
                    dir.join(f).display()
                );
            }
            let td = TrustDomain::new(&trust_domain)?;
            let made = Material::generate(&td)?;
            made.write(&dir)
                .with_context(|| format!("writing {}", dir.display()))?;
            println!(
                "wrote {} (the trust anchor), {} and {} (trust domain {td})",
                material::ANCHORS_FILE,
                material::ISSUER_FILE,
                material::ISSUER_KEY_FILE,
            );
            Ok(())
        }
        IdentityCommand::Token {
            nodes,
            dashboard,
            ingress,
        } => {
            for node in &nodes {
                anyhow::ensure!(
                    !node.is_empty() && !node.contains(char::is_whitespace) && !node.contains('/'),
                    "{node:?} is no node name"
                );
            }
            let dashboard = dashboard.then(weft_control::identity::tokens::dashboard_entry);
            let ingress = ingress.then(weft_control::identity::tokens::ingress_entry);
            for name in nodes.into_iter().chain(dashboard).chain(ingress) {
                println!("{name} {}", weft_identity::random_token()?);
            }
            Ok(())
        }
    }
}
