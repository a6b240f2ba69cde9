//! A mesh whose identities come from a real `weft control` run without Kubernetes: its CA
//! made by `weft identity init`, bootstrap tokens by `weft identity token`, endpoints from a
//! discovery file; proxies on loopback nodes get and renew their leaves from it, as VMs
//! would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backend::Backend;
use crate::control::WeftControl;
use crate::discovery::{self, Ep};
use crate::proxy::{weft_bin, WeftProxy};
use crate::TempDir;

/// Runs `weft ARGS`, which must succeed; its stdout.
pub async fn weft(args: &[&std::ffi::OsStr]) -> String {
    let out = tokio::process::Command::new(weft_bin())
        .args(args)
        .output()
        .await
        .expect("run weft");
    assert!(
        out.status.success(),
        "weft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a new CA into `dir` with `weft identity init`.
pub async fn init_ca(dir: &Path) {
    weft(&["identity".as_ref(), "init".as_ref(), dir.as_os_str()]).await;
}

/// Replaces `dir/name` with `text` in one step, as a Secret's update does.
pub fn replace(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.new"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

pub fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

pub struct IdentityMesh {
    pub tmp: TempDir,
    /// The folder the control plane reads its CA from.
    pub ca: PathBuf,
    pub control: WeftControl,
    /// node-1: where the test's requests leave from.
    pub one: WeftProxy,
    /// node-2: where `web` runs.
    pub two: WeftProxy,
    pub web: Backend,
    /// Each node's token file, then the dashboard's (`sa/weft-dashboard`).
    pub tokens: Vec<(String, PathBuf)>,
}

impl IdentityMesh {
    /// Two nodes on `127.0.BLOCK.1` and `.2`, the control plane on `.10`; leaves live
    /// `leaf_lifetime` (`30s`, `24h` …).
    pub async fn start(block: u8, leaf_lifetime: &str) -> Self {
        let tmp = TempDir::new("identity");
        let ca = tmp.path("ca");
        init_ca(&ca).await;
        let lines = weft(&[
            "identity".as_ref(),
            "token".as_ref(),
            "node-1".as_ref(),
            "node-2".as_ref(),
            "--dashboard".as_ref(),
        ])
        .await;
        std::fs::write(tmp.path("tokens"), &lines).unwrap();
        let tokens: Vec<(String, PathBuf)> = lines
            .lines()
            .map(|l| {
                let (node, token) = l.split_once(' ').unwrap();
                let path = tmp.path(&format!("{}.token", node.replace('/', "-")));
                std::fs::write(&path, format!("{token}\n")).unwrap();
                (node.to_string(), path)
            })
            .collect();
        let disc = tmp.path("discovery.toml");
        discovery::write(&disc, &[]);
        let control = WeftControl::start_with(
            &format!("127.0.{block}.10"),
            &[
                "--discovery-file".as_ref(),
                disc.as_os_str(),
                "--identity-dir".as_ref(),
                ca.as_os_str(),
                "--bootstrap-tokens".as_ref(),
                tmp.path("tokens").as_os_str(),
                "--leaf-lifetime".as_ref(),
                leaf_lifetime.as_ref(),
            ],
        )
        .await;
        let dest = control.destination;
        let one = proxy(
            &format!("127.0.{block}.1"),
            "node-1",
            dest,
            &ca,
            &tokens[0].1,
            &[],
        )
        .await;
        let two = proxy(
            &format!("127.0.{block}.2"),
            "node-2",
            dest,
            &ca,
            &tokens[1].1,
            &[],
        )
        .await;
        let web = Backend::start(&format!("127.0.{block}.2")).await;
        let mut ep = Ep::on(web.addr, two.inbound);
        ep.labels.push(("node".into(), "node-2".into()));
        discovery::write(&disc, &[("web", vec![ep])]);
        let mesh = Self {
            tmp,
            ca,
            control,
            one,
            two,
            web,
            tokens,
        };
        for p in [&mesh.one, &mesh.two] {
            wait_ready(p).await;
        }
        // The control plane has read the file with `web` in it.
        let proxy = mesh.one.outbound.to_string();
        crate::eventually("web reachable", Duration::from_secs(10), || async {
            let rsp = crate::client::curl(&["-x", &proxy, "http://web/"]).await;
            (rsp.status == 200).then_some(())
        })
        .await;
        mesh
    }

    /// A proxy on `ip` that says it is `node`, proving it with `token_file`.
    pub async fn proxy(&self, ip: &str, node: &str, token_file: &Path) -> WeftProxy {
        self.proxy_with(ip, node, token_file, &[]).await
    }

    /// [`Self::proxy`], with more flags.
    pub async fn proxy_with(
        &self,
        ip: &str,
        node: &str,
        token_file: &Path,
        extra: &[&str],
    ) -> WeftProxy {
        proxy(
            ip,
            node,
            self.control.destination,
            &self.ca,
            token_file,
            extra,
        )
        .await
    }

    /// The discovery file the control plane serves from.
    pub fn discovery(&self) -> PathBuf {
        self.tmp.path("discovery.toml")
    }

    /// The certificates node-2's inbound presents now, leaf first.
    pub async fn served(&self, inbound: SocketAddr) -> Vec<String> {
        crate::openssl::presented(inbound, "h2").await
    }
}

/// A proxy on `ip` that says it is `node`, gets its identity from the control plane at
/// `control` (checked against the anchors in the CA folder `ca`) and proves its node with
/// `token_file`; `extra` flags after.
pub async fn proxy(
    ip: &str,
    node: &str,
    control: SocketAddr,
    ca: &Path,
    token_file: &Path,
    extra: &[&str],
) -> WeftProxy {
    let anchors = ca.join("anchors.pem");
    let mut args = vec![
        "--node",
        node,
        "--trust-anchors",
        anchors.to_str().unwrap(),
        "--identity-token-file",
        token_file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    WeftProxy::start_control(ip, control, &args).await
}

/// A `weft dashboard` collecting from `proxies` that gets its own identity from the control
/// plane at `control`, proving its account with `token_file`.
pub async fn dashboard(
    control: SocketAddr,
    ca: &Path,
    token_file: &Path,
    proxies: &[SocketAddr],
) -> crate::process::Started {
    let mut cmd = tokio::process::Command::new(weft_bin());
    cmd.args(["dashboard", "--addr", "127.0.0.1:0", "--interval", "1s"])
        .arg("--control-plane")
        .arg(control.to_string())
        .arg("--trust-anchors")
        .arg(ca.join("anchors.pem"))
        .arg("--identity-token-file")
        .arg(token_file)
        .env("WEFT_LOG", "info");
    for p in proxies {
        cmd.arg("--proxy").arg(p.to_string());
    }
    crate::process::spawn_until(cmd, "weft dashboard listening").await
}

/// The dashboard's own identity, as its `/api/summary` shows it, once `done` holds for it.
pub async fn dashboard_identity(
    dashboard: SocketAddr,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    crate::eventually(
        "the dashboard's identity",
        Duration::from_secs(20),
        || async {
            let rsp = crate::client::get(dashboard, "dashboard", "/api/summary")
                .await
                .ok()?;
            let v: serde_json::Value = serde_json::from_slice(&rsp.body).ok()?;
            let id = v["identity"].clone();
            done(&id).then_some(id)
        },
    )
    .await
}

/// Waits until `proxy` says it is ready (it has a leaf).
pub async fn wait_ready(proxy: &WeftProxy) {
    crate::eventually("the proxy ready", Duration::from_secs(20), || async {
        let (status, _) = proxy.admin_get("/ready").await;
        (status == 200).then_some(())
    })
    .await;
}
