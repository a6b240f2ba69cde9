//! Two versions of `world` on node B of a [`Mesh`], and `world` split between them by a
//! route in the discovery file: the arrangement of the routing and `weft shift` tests.

use std::net::SocketAddr;
use std::time::Duration;

use crate::backend::Backend;
use crate::client::get;
use crate::discovery;
use crate::eventually;
use crate::load::Outcome;
use crate::mesh::{Mesh, NODE_B};
use crate::proxy::WeftProxy;

/// Two versions of `world` on node B, and `world` itself split between them.
pub struct Split {
    pub mesh: Mesh,
    pub v1: Backend,
    pub v2: Backend,
}

impl Split {
    pub async fn start(v1_weight: u32, v2_weight: u32) -> Self {
        Self::start_in(Mesh::start().await, v1_weight, v2_weight).await
    }

    pub async fn start_in(mesh: Mesh, v1_weight: u32, v2_weight: u32) -> Self {
        let v1 = Backend::start(NODE_B).await;
        let v2 = Backend::start(NODE_B).await;
        let split = Self { mesh, v1, v2 };
        split
            .publish(&split.split_rule(v1_weight, v2_weight), &["split"])
            .await;
        split
    }

    pub fn split_rule(&self, v1: u32, v2: u32) -> String {
        format!(
            "[[services.world.routes]]\nname = \"split\"\nbackends = [{{ service = \"world-v1\", weight = {v1} }}, {{ service = \"world-v2\", weight = {v2} }}]\n"
        )
    }

    pub fn text(&self, routes: &str) -> String {
        let eps = |b: &Backend| vec![self.mesh.on_b(b.addr)];
        let services = [
            ("world", vec![]),
            ("world-v1", eps(&self.v1)),
            ("world-v2", eps(&self.v2)),
        ];
        format!("{}{routes}", discovery::render(&services))
    }

    /// Writes the services and `routes`, and waits until node A applies them: its rules
    /// named `rules` (a request to `world` makes node A follow its routes).
    pub async fn publish(&self, routes: &str, rules: &[&str]) {
        discovery::write_raw(&self.mesh.discovery, &self.text(routes));
        for (name, b) in [("world-v1", &self.v1), ("world-v2", &self.v2)] {
            self.mesh
                .a
                .wait_for(name, &[self.mesh.on_b(b.addr)], true)
                .await;
        }
        let a = &self.mesh.a;
        eventually(
            "node A applies the routes",
            Duration::from_secs(20),
            || async {
                let _ = get(a.outbound, "world", "/").await;
                (rule_names(a).await == rules).then_some(())
            },
        )
        .await;
    }

    pub fn share_of_v2(&self, outcomes: &[&Outcome]) -> f64 {
        let v2 = self.v2.addr.to_string();
        let n = outcomes
            .iter()
            .filter(|o| o.backend.as_deref() == Some(&v2))
            .count();
        n as f64 / outcomes.len().max(1) as f64
    }
}

/// The names of the rules node A applies to `world` now.
pub async fn rule_names(proxy: &WeftProxy) -> Vec<String> {
    let (_, body) = proxy.admin_get("/routes").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["services"]["world"]["routes"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The weights node A applies to `world`'s rule `split` now (after a first request).
pub async fn weights(proxy: &WeftProxy) -> Vec<u64> {
    let (_, body) = proxy.admin_get("/routes").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["services"]["world"]["routes"][0]["backends"]
        .as_array()
        .map(|bs| bs.iter().map(|b| b["weight"].as_u64().unwrap()).collect())
        .unwrap_or_default()
}

/// Waits, up to `within`, until a request for `world` through `proxy` is answered `200`
/// by `backend`.
pub async fn answered_by(what: &str, within: Duration, proxy: SocketAddr, backend: SocketAddr) {
    let backend = backend.to_string();
    eventually(what, within, || async {
        let r = get(proxy, "world", "/echo").await.ok()?;
        (r.status == 200 && r.header("x-backend") == Some(&*backend)).then_some(())
    })
    .await
}

/// How a `weft` command ended: its output (stdout, then stderr) and how long it ran.
pub struct Ran {
    pub ok: bool,
    pub out: String,
    pub took: Duration,
}

/// Runs `weft ARGS` (a `weft shift`, say), which must end by itself within `limit`, and
/// prints what it said.
pub async fn run_weft(args: &[&str], limit: Duration) -> Ran {
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(
        limit,
        tokio::process::Command::new(crate::proxy::weft_bin())
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("weft ends by itself")
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    Ran {
        ok: out.status.success(),
        out: text,
        took: started.elapsed(),
    }
}
