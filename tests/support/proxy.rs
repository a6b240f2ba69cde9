//! A real `weft proxy` process on a loopback "node" (127.0.0.x), on ephemeral ports read
//! back from its start-up line, so tests run in parallel safely.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::client;
use crate::process::spawn_until;

/// The `weft` binary built beside this test (`cargo build --release` first), or `$WEFT_BIN`.
pub fn weft_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WEFT_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("weft");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release` first",
        bin.display()
    );
    bin
}

/// The standalone node proxy built beside [`weft_bin`]: what the DaemonSet runs.
pub fn weft_proxy_bin() -> PathBuf {
    weft_bin().with_file_name("weft-proxy")
}

/// `weft proxy`, to which the flags are added.
fn subcommand() -> Command {
    let mut cmd = Command::new(weft_bin());
    cmd.arg("proxy");
    cmd
}

pub struct WeftProxy {
    child: Child,
    pub outbound: SocketAddr,
    pub inbound: SocketAddr,
    pub admin: SocketAddr,
    /// The ingress listener, when it was given one (`--ingress`).
    pub ingress: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
}

impl WeftProxy {
    /// Starts a proxy on `ip` with all three listeners on ephemeral ports.
    pub async fn start(ip: &str, discovery: &Path) -> Self {
        Self::start_with(ip, discovery, &[]).await
    }

    pub async fn start_with(ip: &str, discovery: &Path, extra: &[&str]) -> Self {
        let source = ["--discovery-file".as_ref(), discovery.as_os_str()];
        Self::start_source(subcommand(), ip, &source, extra).await
    }

    /// As [`Self::start_with`], with the standalone `weft-proxy` binary.
    pub async fn start_standalone_with(ip: &str, discovery: &Path, extra: &[&str]) -> Self {
        let source = ["--discovery-file".as_ref(), discovery.as_os_str()];
        Self::start_source(Command::new(weft_proxy_bin()), ip, &source, extra).await
    }

    /// Starts a proxy that learns endpoints from `weft control` at `control`.
    pub async fn start_control(ip: &str, control: SocketAddr, extra: &[&str]) -> Self {
        let control = control.to_string();
        let source = ["--control-plane".as_ref(), control.as_ref()];
        Self::start_source(subcommand(), ip, &source, extra).await
    }

    async fn start_source(
        mut cmd: Command,
        ip: &str,
        source: &[&std::ffi::OsStr],
        extra: &[&str],
    ) -> Self {
        if !extra.contains(&"--node") {
            cmd.args(["--node", ip]);
        }
        cmd.args(["--outbound", &format!("{ip}:0")])
            .args(["--inbound", &format!("{ip}:0")])
            .args(["--admin", &format!("{ip}:0")])
            .args(source)
            .args(extra)
            .env("WEFT_LOG", "info,weft_proxy=debug");
        let started = spawn_until(cmd, "weft proxy listening").await;
        Self {
            outbound: started.addr("outbound"),
            inbound: started.addr("inbound"),
            admin: started.addr("admin"),
            ingress: started.try_addr("ingress"),
            child: started.child,
            log: started.log,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Read syscalls the process has made so far (`syscr` in /proc/PID/io).
    pub fn read_syscalls(&self) -> u64 {
        let pid = self.child.id().expect("running proxy has a pid");
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("read /proc/PID/io");
        io.lines()
            .find_map(|l| l.strip_prefix("syscr: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("syscr in /proc/PID/io")
    }

    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let rsp = client::get(self.admin, "admin", path)
            .await
            .expect("admin request");
        (rsp.status, String::from_utf8_lossy(&rsp.body).into_owned())
    }

    pub async fn metrics(&self) -> String {
        self.admin_get("/metrics").await.1
    }

    /// Waits until the admin API lists `service` with exactly `addrs` as its endpoints.
    pub async fn wait_endpoints(&self, service: &str, addrs: &[SocketAddr]) {
        let eps: Vec<_> = addrs
            .iter()
            .map(|a| crate::discovery::Ep::direct(*a))
            .collect();
        self.wait_for(service, &eps, false).await;
    }

    /// Waits until the admin API lists `service` with exactly `eps` (address, node and
    /// protocol), so a test never races a discovery reload.
    pub async fn wait_for(&self, service: &str, eps: &[crate::discovery::Ep], exact: bool) {
        let describe = |addr: &str, node: &str, proto: &str| {
            if exact {
                format!("{addr} {node} {proto}")
            } else {
                addr.to_string()
            }
        };
        let mut want: Vec<String> = eps
            .iter()
            .map(|e| {
                let node = e.node.map(|n| n.to_string()).unwrap_or_default();
                describe(&e.addr.to_string(), &node, e.protocol)
            })
            .collect();
        want.sort();
        crate::eventually(
            &format!("{service} endpoints {want:?}"),
            Duration::from_secs(5),
            || async {
                let (_, body) = self.admin_get("/endpoints").await;
                let v: serde_json::Value = serde_json::from_str(&body).ok()?;
                let eps = v["services"][service]["endpoints"].as_array()?;
                let mut got: Vec<String> = eps
                    .iter()
                    .map(|e| {
                        describe(
                            e["addr"].as_str().unwrap_or(""),
                            e["node"].as_str().unwrap_or(""),
                            e["protocol"].as_str().unwrap_or(""),
                        )
                    })
                    .collect();
                got.sort();
                (got == want).then_some(())
            },
        )
        .await;
    }

    /// Sends SIGTERM, as Kubernetes does when it stops a pod.
    pub fn sigterm(&self) {
        let pid = self.child.id().expect("running proxy has a pid");
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success());
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .expect("proxy exits in time")
            .expect("wait for proxy")
    }

    /// A metric sample's value, `None` when the series is absent.
    pub async fn sample(&self, series: &str) -> Option<f64> {
        metric(&self.metrics().await, series)
    }
}

/// Finds `series` (name with its labels exactly as exposed) in a text exposition.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Every sample name in a text exposition (histograms contribute `_bucket`, `_sum`, `_count`).
pub fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(String::from))
        .collect()
}
