//! Test support for weft's end-to-end tests: real `weft` processes, real backends on
//! loopback, real clients. One copy of each helper, shared by every test.
//!
//! - [`proxy`]: start a `weft proxy` on a loopback "node", read its ports, drive its admin.
//! - [`backend`]: an HTTP/1.1 + h2c backend with echo, status, streaming and slow routes.
//! - [`discovery`]: write discovery files the proxies watch.
//! - [`fake_kube`], [`kube_objects`]: a fake Kubernetes API server and the objects it serves.
//! - [`load`]: steady open-loop load that keeps every outcome with its time.
//! - [`client`]: `curl` and a hyper HTTP/2 client.
//! - [`control`]: a `weft control` process.
//! - [`demo`]: a running `weft demo` and its dashboard API.
//! - [`python`]: Python peers (`*.py` here): gRPC, TLS and WebSocket clients and servers.
//! - [`webdriver`]: headless Chromium through chromedriver.
//! - [`dns`]: a DNS server on loopback whose records a test sets (egress).
//! - [`site_cert`]: a CA and a site's certificate for the ingress, made with `openssl`.
//! - [`otlp`]: an OTLP trace collector that keeps every span it is sent.

pub mod backend;
pub mod client;
pub mod control;
pub mod demo;
pub mod discovery;
pub mod dns;
pub mod fake_kube;
pub mod identity;
pub mod kube_mesh;
pub mod kube_objects;
pub mod load;
pub mod mesh;
pub mod openssl;
pub mod otlp;
pub mod process;
pub mod proxy;
pub mod python;
pub mod site_cert;
pub mod split;
pub mod tap;
pub mod webdriver;

use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, failing the test with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fresh temporary folder, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("weft-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where test artifacts (screenshots, logs worth keeping) go.
pub fn artifacts_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    std::fs::create_dir_all(&dir).expect("create artifacts dir");
    dir
}

/// An address on `ip` with a port nothing listens on (for a moment: a server given it
/// binds right away, and tests that need no server use it to be refused).
pub fn free_addr(ip: &str) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind(format!("{ip}:0")).expect("bind an ephemeral port");
    l.local_addr().expect("bound address")
}
