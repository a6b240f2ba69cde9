//! A real `weft demo` process for tests, on its own block of loopback addresses with every
//! port picked by the system, read back from the banner it prints.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::proxy::weft_bin;

#[derive(Debug, Clone)]
pub struct DemoNode {
    pub name: String,
    pub outbound: SocketAddr,
    pub inbound: SocketAddr,
    pub admin: SocketAddr,
    /// `(app, address)` for each instance on the node.
    pub apps: Vec<(String, SocketAddr)>,
}

pub struct Demo {
    child: Child,
    pub nodes: Vec<DemoNode>,
    pub dashboard: SocketAddr,
    /// The first node's ingress, to hello.
    pub ingress: Option<SocketAddr>,
    /// The `curl -x` address the banner suggests.
    pub curl_proxy: String,
    /// The traffic generator's control (`GET`/`POST /traffic`).
    pub traffic_control: SocketAddr,
    pub banner: String,
    stderr: Arc<Mutex<String>>,
}

impl Demo {
    /// Starts `weft demo` on `127.0.{block}.2…` with `extra` flags.
    pub async fn start(block: u8, extra: &[&str]) -> Self {
        let ips = format!("127.0.{block}.2,127.0.{block}.3,127.0.{block}.4");
        let mut child = Command::new(weft_bin())
            .arg("demo")
            .args(["--node-ips", &ips])
            .args([
                "--outbound-port",
                "0",
                "--inbound-port",
                "0",
                "--admin-port",
                "0",
            ])
            .args([
                "--hello-port",
                "0",
                "--world-port",
                "0",
                "--ingress-port",
                "0",
                "--dashboard",
                "127.0.0.1:0",
                "--traffic-control-port",
                "0",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn weft demo");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let err = child.stderr.take().unwrap();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = String::new();
        let read = async {
            while let Ok(Some(l)) = out.next_line().await {
                banner.push_str(&l);
                banner.push('\n');
                if l.starts_with("Ctrl-C") {
                    return true;
                }
            }
            false
        };
        let done = tokio::time::timeout(Duration::from_secs(20), read).await;
        assert!(
            matches!(done, Ok(true)),
            "weft demo did not start:\n{banner}\n{}",
            stderr.lock().unwrap()
        );
        tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
        let nodes = banner
            .lines()
            .filter(|l| l.trim_start().starts_with("node-"))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let apps = l
                    .split_once(f[3])
                    .map(|(_, rest)| rest)
                    .unwrap_or("")
                    .split(',')
                    .filter_map(|a| {
                        let mut it = a.split_whitespace();
                        Some((it.next()?.to_string(), it.next()?.parse().ok()?))
                    })
                    .collect();
                DemoNode {
                    name: f[0].to_string(),
                    outbound: f[1].parse().unwrap(),
                    inbound: f[2].parse().unwrap(),
                    admin: f[3].parse().unwrap(),
                    apps,
                }
            })
            .collect();
        let dashboard = banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("dashboard: http://"))
            .expect("dashboard line")
            .trim()
            .parse()
            .unwrap();
        let ingress = banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("ingress:   http://"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|a| a.parse().ok());
        let curl_proxy = banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("curl -x "))
            .and_then(|l| l.split_whitespace().next())
            .expect("curl line")
            .to_string();
        let traffic_control = banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("traffic control: http://"))
            .and_then(|l| l.split('/').next())
            .and_then(|a| a.parse().ok())
            .expect("traffic control line");
        Self {
            child,
            nodes,
            dashboard,
            ingress,
            curl_proxy,
            traffic_control,
            banner,
            stderr,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// GET on the dashboard's API, parsed.
    pub async fn api(&self, path: &str) -> serde_json::Value {
        api(self.dashboard, path).await
    }

    /// Stops the demo as Ctrl-C would and returns its exit status.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running demo");
        std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("demo stops in time")
            .unwrap()
    }
}

/// GET `path` on a dashboard, parsed as JSON.
pub async fn api(dashboard: SocketAddr, path: &str) -> serde_json::Value {
    let rsp = crate::client::get(dashboard, "dashboard", path)
        .await
        .expect("dashboard answers");
    assert_eq!(rsp.status, 200, "{path}: {}", rsp.text());
    serde_json::from_slice(&rsp.body).expect("dashboard JSON")
}

/// The row named `name` (by `key`) in an API list.
pub fn row<'a>(list: &'a serde_json::Value, key: &str, name: &str) -> &'a serde_json::Value {
    list.as_array()
        .and_then(|a| a.iter().find(|r| r[key] == name))
        .unwrap_or_else(|| panic!("no {key}={name} in {list}"))
}

/// A `weft dashboard` process collecting every second from `source`, and where it listens
/// (read from its first stdout line).
pub async fn start_dashboard(source: &[&str]) -> (tokio::process::Child, std::net::SocketAddr) {
    let mut dash = tokio::process::Command::new(weft_bin())
        .args(["dashboard", "--addr", "127.0.0.1:0", "--interval", "1s"])
        .args(source)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(dash.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("weft dashboard: http://")
        .unwrap()
        .parse()
        .unwrap();
    (dash, addr)
}
