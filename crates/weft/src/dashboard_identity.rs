//! `weft dashboard`'s own mesh identity: got from the control plane with a token of the
//! dashboard's account, renewed as a proxy's leaf is, and shown in its API and `/metrics`.
//! Proxies will let it tap (over mutual TLS) by it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use weft_core::config::IdentityConfig;
use weft_dashboard::identity::OwnIdentity;
use weft_proxy::MeshIdentity;

#[derive(Args)]
pub struct IdentityArgs {
    /// The control plane to get the dashboard's mesh identity from (`host:port`).
    #[arg(
        long,
        env = "WEFT_CONTROL_PLANE",
        requires_all = ["trust_anchors", "identity_token_file"]
    )]
    control_plane: Option<String>,
    /// The mesh's trust anchors (PEM), to check the control plane by.
    #[arg(long, env = "WEFT_TRUST_ANCHORS", requires = "control_plane")]
    trust_anchors: Option<PathBuf>,
    /// A token of the dashboard's account (`weft-dashboard`), read at each renewal: on
    /// Kubernetes its projected ServiceAccount token, elsewhere its bootstrap token.
    #[arg(long, env = "WEFT_IDENTITY_TOKEN_FILE", requires = "control_plane")]
    identity_token_file: Option<PathBuf>,
    /// The mesh's trust domain.
    #[arg(long, env = "WEFT_TRUST_DOMAIN", default_value = "cluster.local")]
    trust_domain: String,
    /// The namespace weft runs in, named in the dashboard's identity.
    #[arg(long, env = "WEFT_IDENTITY_NAMESPACE", default_value = "weft")]
    identity_namespace: String,
}

/// Starts getting and renewing the dashboard's leaf when a control plane is named; must run
/// on the runtime.
pub fn start(args: IdentityArgs) -> anyhow::Result<Option<OwnIdentity>> {
    let Some(control_plane) = args.control_plane else {
        return Ok(None);
    };
    let config = IdentityConfig {
        trust_anchors: args.trust_anchors,
        token_file: args.identity_token_file,
        trust_domain: args.trust_domain,
        namespace: args.identity_namespace,
        allow_plaintext: false,
        account: None,
    };
    let identity = MeshIdentity::workload(&config, weft_identity::DASHBOARD_ACCOUNT)
        .context("the dashboard's identity")?;
    let shown = weft_demo::mesh_ca::shown(identity.clone());
    let certifier = identity
        .certifier(&config, &control_plane, shown.metrics.identity.clone())
        .context("the dashboard's identity")?;
    tokio::spawn(certifier.run());
    Ok(Some(shown))
}
