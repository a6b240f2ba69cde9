//! A mesh run the Kubernetes way, with no Kubernetes: a fake API server holding two nodes
//! and their weft proxy pods, a real `weft control` watching it, and two real proxies
//! subscribed to the control plane. Instances are real backends that tests add as pods and
//! EndpointSlices of the `world` service.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;

use crate::backend::Backend;
use crate::control::WeftControl;
use crate::fake_kube::FakeKube;
use crate::kube_objects::{self as k8s, Ep};
use crate::mesh::{NODE_A, NODE_B};
use crate::proxy::WeftProxy;
use crate::TempDir;

pub const NODES: [(&str, &str); 2] = [("node-a", NODE_A), ("node-b", NODE_B)];
/// The audience weft's projected tokens are made for (the DaemonSet's volume says it).
pub const TOKEN_AUDIENCE: &str = "weft-identity";

pub struct KubeMesh {
    pub kube: Arc<FakeKube>,
    pub control: WeftControl,
    pub a: WeftProxy,
    pub b: WeftProxy,
    pub dir: TempDir,
}

/// A fake API server holding the two nodes and the `world` service, and a kubeconfig for
/// it in a fresh folder tagged `tag`.
async fn cluster(tag: &str) -> (Arc<FakeKube>, TempDir, std::path::PathBuf) {
    let kube = FakeKube::new();
    let addr = kube.serve("127.0.0.1:0".parse().unwrap()).await;
    let dir = TempDir::new(tag);
    let kubeconfig = dir.path("kubeconfig");
    kube.kubeconfig(addr, &kubeconfig);
    for (name, ip) in NODES {
        kube.apply("nodes", k8s::node(name, ip, &format!("zone-{name}")));
    }
    kube.apply("services", k8s::service("default", "world", 80));
    (kube, dir, kubeconfig)
}

impl KubeMesh {
    /// Nodes, proxy pods, a ready control plane and the `world` service (no instances yet).
    pub async fn start() -> Self {
        Self::start_in(cluster("kube").await).await
    }

    /// As [`Self::start`], in a cluster without Gateway API's CRDs (as most have).
    pub async fn start_without_gateway_api() -> Self {
        let c = cluster("kube-no-gateway").await;
        c.0.without("httproutes");
        c.0.without("grpcroutes");
        Self::start_in(c).await
    }

    async fn start_in(
        (kube, dir, kubeconfig): (Arc<FakeKube>, TempDir, std::path::PathBuf),
    ) -> Self {
        let control = WeftControl::start("127.0.0.1", &kubeconfig).await;
        control.wait_ready().await;
        let a = WeftProxy::start_control(NODE_A, control.destination, &[]).await;
        let b = WeftProxy::start_control(NODE_B, control.destination, &[]).await;
        kube.apply("pods", k8s::proxy_pod("node-a", a.inbound, true));
        kube.apply("pods", k8s::proxy_pod("node-b", b.inbound, true));
        Self {
            kube,
            control,
            a,
            b,
            dir,
        }
    }

    /// As [`Self::start`], with identity on: the control plane is the mesh's CA (its files
    /// in `dir/ca`) and checks proxies' projected ServiceAccount tokens with TokenReview;
    /// each proxy has a token bound to its pod and node.
    pub async fn start_mtls() -> Self {
        let (kube, dir, kubeconfig) = cluster("kube-mtls").await;
        let ca = dir.path("ca");
        crate::identity::init_ca(&ca).await;
        let control = WeftControl::start_with(
            "127.0.0.1",
            &[
                "--kubeconfig".as_ref(),
                kubeconfig.as_os_str(),
                "--identity-dir".as_ref(),
                ca.as_os_str(),
            ],
        )
        .await;
        control.wait_ready().await;
        let mut proxies = Vec::new();
        for (node, ip) in NODES {
            let token = format!("token-of-weft-proxy-{node}");
            let pod = format!("weft-proxy-{node}");
            kube.issue_token(
                &token,
                &[TOKEN_AUDIENCE],
                "weft:weft-proxy",
                &pod,
                Some(node),
            );
            let file = dir.path(&format!("{node}.token"));
            std::fs::write(&file, &token).unwrap();
            let proxy =
                crate::identity::proxy(ip, node, control.destination, &ca, &file, &[]).await;
            let pod = k8s::proxy_pod_with_admin(node, proxy.inbound, proxy.admin, true);
            kube.apply("pods", pod);
            proxies.push(proxy);
        }
        let b = proxies.pop().unwrap();
        let a = proxies.pop().unwrap();
        Self {
            kube,
            control,
            a,
            b,
            dir,
        }
    }

    pub fn proxy_flag(&self) -> String {
        format!("http://{}", self.a.outbound)
    }

    /// The pod and the EndpointSlice (named after the pod) of one `world` instance.
    pub fn add_instance(&self, backend: &Backend, node: &str, pod: &str, version: &str) {
        self.add_instance_of(backend, "world", node, pod, version);
    }

    /// One instance of `service`: its pod and a ready slice of its own.
    pub fn add_instance_of(
        &self,
        backend: &Backend,
        service: &str,
        node: &str,
        pod: &str,
        version: &str,
    ) {
        let ip = backend.addr.ip().to_string();
        self.kube
            .apply("pods", k8s::app_pod("default", pod, node, &ip, version));
        self.apply_slice(service, backend.addr, node, pod, true, false);
    }

    /// Rewrites a `world` instance's slice with the given conditions.
    pub fn set_instance(
        &self,
        addr: SocketAddr,
        node: &str,
        pod: &str,
        ready: bool,
        terminating: bool,
    ) {
        self.apply_slice("world", addr, node, pod, ready, terminating);
    }

    fn apply_slice(
        &self,
        service: &str,
        addr: SocketAddr,
        node: &str,
        pod: &str,
        ready: bool,
        terminating: bool,
    ) {
        let ip = addr.ip().to_string();
        let ep = Ep {
            ip: &ip,
            node,
            pod,
            ready,
            terminating,
        };
        let slice = k8s::slice("default", pod, service, addr.port(), &[ep]);
        self.kube.apply("endpointslices", slice);
    }

    pub fn remove_instance(&self, pod: &str) {
        self.kube.delete("endpointslices", "default", pod);
        self.kube.delete("pods", "default", pod);
    }

    /// What proxy A's admin API lists for `world`, as JSON endpoints.
    pub async fn endpoints_at_a(&self) -> Vec<Value> {
        let (_, body) = self.a.admin_get("/endpoints").await;
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        v["services"]["world"]["endpoints"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
