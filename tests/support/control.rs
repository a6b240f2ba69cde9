//! A real `weft control` process pointed at a kubeconfig (the fake API server's), on
//! loopback ports read back from its start-up line; it can be killed and started again on
//! the same ports, as a rolled control-plane pod would be.

use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::client;
use crate::process::spawn_until;
use crate::proxy::weft_bin;

/// Runs `weft check` against the cluster of `kubeconfig`: whether it passed, and what it
/// printed (both streams).
pub async fn weft_check(kubeconfig: &Path) -> (bool, String) {
    let out = Command::new(weft_bin())
        .arg("check")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .output()
        .await
        .expect("run weft check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub struct WeftControl {
    child: Child,
    pub destination: SocketAddr,
    pub admin: SocketAddr,
    /// Where endpoints come from, and the rest: given again on a restart.
    args: Vec<OsString>,
    log: Arc<Mutex<String>>,
}

impl WeftControl {
    /// Starts on `ip` with ephemeral ports.
    pub async fn start(ip: &str, kubeconfig: &Path) -> Self {
        let any = |ip: &str| format!("{ip}:0").parse().unwrap();
        Self::start_on(any(ip), any(ip), kubeconfig).await
    }

    pub async fn start_on(destination: SocketAddr, admin: SocketAddr, kubeconfig: &Path) -> Self {
        let args = vec!["--kubeconfig".into(), kubeconfig.as_os_str().to_owned()];
        Self::start_args(destination, admin, args).await
    }

    /// Starts on `ip` with ephemeral ports and `args` (the source of endpoints, identity …).
    pub async fn start_with(ip: &str, args: &[&OsStr]) -> Self {
        let any = format!("{ip}:0").parse().unwrap();
        Self::start_args(any, any, args.iter().map(|a| a.to_os_string()).collect()).await
    }

    async fn start_args(destination: SocketAddr, admin: SocketAddr, args: Vec<OsString>) -> Self {
        let mut cmd = Command::new(weft_bin());
        cmd.arg("control")
            .args(["--listen", &destination.to_string()])
            .args(["--admin", &admin.to_string()])
            .args(&args)
            .env("WEFT_LOG", "info,weft_control=debug,kube_runtime=debug");
        let started = spawn_until(cmd, "weft control listening").await;
        Self {
            destination: started.addr("destination"),
            admin: started.addr("admin"),
            child: started.child,
            args,
            log: started.log,
        }
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running control plane has a pid");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        match client::get(self.admin, "admin", path).await {
            Ok(rsp) => (rsp.status, String::from_utf8_lossy(&rsp.body).into_owned()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// Waits for /ready: every Kubernetes resource listed.
    pub async fn wait_ready(&self) {
        crate::eventually("weft control ready", Duration::from_secs(15), || async {
            (self.admin_get("/ready").await.0 == 200).then_some(())
        })
        .await;
    }

    /// Kills the process, leaves it down for `down`, then starts it again on the same ports.
    pub async fn outage(&mut self, down: std::time::Duration) {
        self.child.kill().await.expect("kill weft control");
        tokio::time::sleep(down).await;
        let next = Self::start_args(self.destination, self.admin, self.args.clone()).await;
        *self = next;
    }

    /// Kills the process (no goodbye to its streams) and starts a new one on the same ports.
    pub async fn restart(&mut self) {
        self.child.kill().await.expect("kill weft control");
        let next = Self::start_args(self.destination, self.admin, self.args.clone()).await;
        *self = next;
    }
}
