//! The discovery documents `weft demo` writes: hello, world (and with `--world-v2` its
//! canary and the route that splits it), each instance with the proxy on its node. Each
//! proxy reads one; with the autoscaler each node has its own, so an instance can be listed
//! by its own node's proxy before (or after) the others.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What one node runs, as a document lists it.
pub(crate) struct Listed<'a> {
    pub name: &'a str,
    /// The node's inbound proxy, where peers send its instances' requests.
    pub inbound: SocketAddr,
    pub hello: &'a [SocketAddr],
    pub world: Vec<SocketAddr>,
    pub world_v2: &'a [SocketAddr],
}

/// The services' ports and whether world is split.
pub(crate) struct Shape {
    pub hello_port: u16,
    pub world_port: u16,
    pub split: bool,
}

/// Which files the proxies read: one for all, or one per node.
#[derive(Clone, Debug)]
pub(crate) enum Files {
    Shared(PathBuf),
    PerNode(Vec<PathBuf>),
}

impl Files {
    /// One file per node in `dir`: `discovery-node-1.toml` …
    pub fn per_node(dir: &Path, nodes: usize) -> Self {
        Self::PerNode(
            (1..=nodes)
                .map(|i| dir.join(format!("discovery-node-{i}.toml")))
                .collect(),
        )
    }

    /// The file node `i`'s proxy reads.
    pub fn of_node(&self, i: usize) -> &Path {
        match self {
            Self::Shared(p) => p,
            Self::PerNode(ps) => &ps[i],
        }
    }
}

/// The document for `nodes`.
pub(crate) fn render(shape: &Shape, nodes: &[Listed<'_>]) -> String {
    let mut out =
        String::from("# Written by `weft demo`: each app instance and the proxy on its node.\n");
    // With world-v2, world's instances are world-v1's, and world is split between them.
    let v1 = if shape.split { "world-v1" } else { "world" };
    for (service, port) in [("hello", shape.hello_port), ("world", shape.world_port)] {
        // A tunnel may name the service on 80 (what `curl -p` asks for) or on its apps'
        // own port; with ephemeral ports each instance has its own, so any port goes.
        if port != 0 {
            let _ = writeln!(out, "[services.{service}]\nports = [80, {port}]\n");
        } else {
            let _ = writeln!(out, "[services.{service}]\n");
        }
        if service == "hello" {
            endpoints(
                &mut out,
                "hello",
                nodes,
                |n| n.hello,
                "app = \"hello\"",
                "http1",
            );
            continue;
        }
        if shape.split {
            let _ = writeln!(
                out,
                "[[services.world.routes]]\nname = \"split\"\nbackends = [{{ service = \"world-v1\", weight = 100 }}, {{ service = \"world-v2\", weight = 0 }}]\n"
            );
            let _ = writeln!(out, "[services.world-v2]\n");
            let labels = "app = \"world\", version = \"v2\"";
            endpoints(&mut out, "world-v2", nodes, |n| n.world_v2, labels, "http2");
            let _ = writeln!(out, "[services.world-v1]\n");
        }
        // world speaks HTTP/2 too (its gRPC), so its node's proxy delivers to it in that.
        let labels = "app = \"world\", version = \"v1\"";
        endpoints(&mut out, v1, nodes, |n| n.world.as_slice(), labels, "http2");
    }
    out
}

/// Writes `text` to `path` whole: the proxies never read half a document.
pub(crate) fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// One service's endpoints, each with the proxy on its node. The `node` label names the
/// node whose proxy's identity the peers expect.
fn endpoints<'a>(
    out: &mut String,
    service: &str,
    nodes: &'a [Listed<'a>],
    addrs: impl Fn(&'a Listed<'a>) -> &'a [SocketAddr],
    labels: &str,
    protocol: &str,
) {
    for n in nodes {
        for a in addrs(n) {
            let _ = writeln!(
                out,
                "[[services.{service}.endpoints]]\naddr = \"{a}\"\nnode = \"{}\"\nprotocol = \"{protocol}\"\nlabels = {{ {labels}, node = \"{}\" }}\n",
                n.inbound, n.name
            );
        }
    }
}
