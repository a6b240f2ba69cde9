//! Discovery files for tests, written atomically (write then rename) as an operator's
//! tooling would, so a proxy never reads half a file.

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Ep {
    pub addr: SocketAddr,
    pub node: Option<SocketAddr>,
    pub protocol: &'static str,
    pub labels: Vec<(String, String)>,
}

impl Ep {
    /// An HTTP/1.1 instance on the node whose inbound listener is `node`.
    pub fn on(addr: SocketAddr, node: SocketAddr) -> Self {
        Self {
            addr,
            node: Some(node),
            protocol: "http1",
            labels: vec![],
        }
    }

    /// An instance with no proxy on its node: outbound proxies send to it directly.
    pub fn direct(addr: SocketAddr) -> Self {
        Self {
            addr,
            node: None,
            protocol: "http1",
            labels: vec![],
        }
    }

    pub fn h2(mut self) -> Self {
        self.protocol = "http2";
        self
    }
}

pub fn render(services: &[(&str, Vec<Ep>)]) -> String {
    let mut out = String::new();
    for (name, eps) in services {
        writeln!(out, "[services.{name:?}]").unwrap();
        writeln!(out, "endpoints = [").unwrap();
        for ep in eps {
            write!(
                out,
                "  {{ addr = \"{}\", protocol = \"{}\"",
                ep.addr, ep.protocol
            )
            .unwrap();
            if let Some(node) = ep.node {
                write!(out, ", node = \"{node}\"").unwrap();
            }
            if !ep.labels.is_empty() {
                let labels: Vec<_> = ep
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k:?} = {v:?}"))
                    .collect();
                write!(out, ", labels = {{ {} }}", labels.join(", ")).unwrap();
            }
            writeln!(out, " }},").unwrap();
        }
        writeln!(out, "]").unwrap();
    }
    out
}

/// Writes `text` to `path` atomically.
pub fn write_raw(path: &Path, text: &str) {
    let tmp: PathBuf = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write discovery temp file");
    std::fs::rename(&tmp, path).expect("rename discovery file");
}

pub fn write(path: &Path, services: &[(&str, Vec<Ep>)]) {
    write_raw(path, &render(services));
}
