//! The usual arrangement: two nodes (127.0.0.2 = A, 127.0.0.3 = B), each with a proxy, and
//! a `world` backend on node B. Clients send through A's outbound listener.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::backend::Backend;
use crate::discovery::{self, Ep};
use crate::proxy::WeftProxy;
use crate::TempDir;

pub const NODE_A: &str = "127.0.0.2";
pub const NODE_B: &str = "127.0.0.3";

pub struct Mesh {
    pub dir: TempDir,
    pub discovery: PathBuf,
    pub a: WeftProxy,
    pub b: WeftProxy,
    pub world: Backend,
    /// The folder of the config file the proxies read, when they were given one.
    config: Option<TempDir>,
}

impl Mesh {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Both proxies get `extra` flags.
    pub async fn start_with(extra: &[&str]) -> Self {
        let dir = TempDir::new("mesh");
        let discovery = dir.path("discovery.toml");
        discovery::write_raw(&discovery, "");
        let world = Backend::start(NODE_B).await;
        // Node a runs `weft proxy`, node b the standalone `weft-proxy` (as the DaemonSet
        // does): every mesh test covers both binaries.
        let a = WeftProxy::start_with(NODE_A, &discovery, extra).await;
        let b = WeftProxy::start_standalone_with(NODE_B, &discovery, extra).await;
        let mesh = Self {
            dir,
            discovery,
            a,
            b,
            world,
            config: None,
        };
        mesh.publish(&[("world", vec![mesh.on_b(mesh.world.addr)])])
            .await;
        mesh
    }

    /// A mesh whose proxies read `config`, kept in the mesh's folder as `proxy.toml`.
    pub async fn with_config(config: &str) -> Self {
        let dir = TempDir::new("mesh-config");
        let cfg = dir.path("proxy.toml");
        std::fs::write(&cfg, config).unwrap();
        let mut mesh = Self::start_with(&["--config", cfg.to_str().unwrap()]).await;
        mesh.config = Some(dir);
        mesh
    }

    /// The config file the proxies read, from [`Mesh::with_config`].
    pub fn config_file(&self) -> PathBuf {
        let dir = self.config.as_ref().expect("a mesh started with a config");
        dir.path("proxy.toml")
    }

    /// `n` new instances of `world` on node B, published in place of the ones it had.
    pub async fn worlds(&self, n: usize) -> Vec<Backend> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(Backend::start(NODE_B).await);
        }
        let eps = v.iter().map(|b| self.on_b(b.addr)).collect();
        self.publish(&[("world", eps)]).await;
        v
    }

    /// An HTTP/1.1 instance on node B.
    pub fn on_b(&self, addr: SocketAddr) -> Ep {
        Ep::on(addr, self.b.inbound)
    }

    /// Writes discovery and waits until both proxies list every service's endpoints.
    pub async fn publish(&self, services: &[(&str, Vec<Ep>)]) {
        discovery::write(&self.discovery, services);
        for (name, eps) in services {
            self.a.wait_for(name, eps, true).await;
            self.b.wait_for(name, eps, true).await;
        }
    }

    /// `curl -x A` arguments for a URL on the mesh.
    pub fn proxy_flag(&self) -> String {
        self.a.outbound.to_string()
    }
}
