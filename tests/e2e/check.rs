//! `weft check` against the fake Kubernetes API server: a healthy mesh, then one with a
//! missing proxy, an unready proxy and a dashboard down, then no API server at all.

use weft_tests::control::weft_check as check;
use weft_tests::fake_kube::FakeKube;
use weft_tests::kube_objects as k8s;

#[tokio::test]
async fn check_says_what_is_up_and_names_each_failure() {
    let kube = FakeKube::new();
    let addr = kube.serve("127.0.0.1:0".parse().unwrap()).await;
    let dir = weft_tests::TempDir::new("check");
    let kubeconfig = dir.path("kubeconfig");
    kube.kubeconfig(addr, &kubeconfig);
    for (node, ip) in [("node-a", "127.0.0.2"), ("node-b", "127.0.0.3")] {
        kube.apply("nodes", k8s::node(node, ip, "z"));
        let inbound = format!("{ip}:4141").parse().unwrap();
        kube.apply("pods", k8s::proxy_pod(node, inbound, true));
    }
    kube.apply("deployments", k8s::deployment("weft", "weft-control", 1, 1));
    let ca = dir.path("ca");
    weft_tests::identity::init_ca(&ca).await;
    let (secret, configmap) = k8s::identity_objects("weft", &ca, None);
    kube.apply("secrets", secret);
    kube.apply("configmaps", configmap);
    kube.apply(
        "deployments",
        k8s::deployment("weft", "weft-dashboard", 1, 1),
    );

    let text = check(&kubeconfig).await;
    println!("{}", text.1);
    assert!(text.0, "healthy mesh reported as failing:\n{}", text.1);
    for line in [
        "[ok  ] kubernetes API: reachable, 2 node(s)",
        "[ok  ] control plane: 1/1 replica(s) of deployment weft/weft-control ready",
        "[ok  ] proxy on node-a: weft-proxy-node-a ready",
        "[ok  ] proxy on node-b: weft-proxy-node-b ready",
        "[ok  ] dashboard: 1/1 replica(s) of deployment weft/weft-dashboard ready",
        "[ok  ] trust anchor: expires ",
        "in 3649 day(s)",
        "[ok  ] issuer: expires ",
        "in 364 day(s)",
        "[ok  ] proxies' anchors: configmap weft-identity-trust-anchors holds the secret's 1 anchor(s)",
        // These pods' addresses are off loopback: their leaves cannot be read, which is said.
        "[warn] leaf of the proxy on node-a: cannot read weft-proxy-node-a's metrics through the API server",
        "weft is up",
    ] {
        assert!(text.1.contains(line), "missing {line:?} in:\n{}", text.1);
    }

    // A third node without a proxy, node-b's proxy unready, the dashboard down.
    kube.apply("nodes", k8s::node("node-c", "127.0.0.4", "z"));
    kube.apply(
        "pods",
        k8s::proxy_pod("node-b", "127.0.0.3:4141".parse().unwrap(), false),
    );
    kube.apply(
        "deployments",
        k8s::deployment("weft", "weft-dashboard", 1, 0),
    );
    let (ok, text) = check(&kubeconfig).await;
    println!("{text}");
    assert!(!ok, "failures must fail the command:\n{text}");
    for line in [
        "[ok  ] proxy on node-a: weft-proxy-node-a ready",
        "[FAIL] proxy on node-b: weft-proxy-node-b not ready",
        "[FAIL] proxy on node-c: no weft-proxy pod on this node",
        "[FAIL] dashboard: 0/1 replica(s) of deployment weft/weft-dashboard ready",
        "3 problem(s) found",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }

    // Mid-rotation the ConfigMap lags: a warning, not a failure. A missing CA fails.
    let other = dir.path("other-ca");
    weft_tests::identity::init_ca(&other).await;
    let lagging = std::fs::read_to_string(other.join("anchors.pem")).unwrap();
    let (_, configmap) = k8s::identity_objects("weft", &ca, Some(&lagging));
    kube.apply("configmaps", configmap);
    let (_, text) = check(&kubeconfig).await;
    assert!(
        text.contains("[warn] proxies' anchors: configmap weft-identity-trust-anchors holds 1 anchor(s) that differ from the secret's"),
        "{text}"
    );
    kube.delete("secrets", "weft", "weft-identity-issuer");
    let (ok, text) = check(&kubeconfig).await;
    assert!(!ok);
    assert!(
        text.contains("[FAIL] identity: secret weft/weft-identity-issuer not found"),
        "{text}"
    );

    // The control plane deleted; then the API server itself gone.
    kube.delete("deployments", "weft", "weft-control");
    let (ok, text) = check(&kubeconfig).await;
    assert!(!ok);
    assert!(
        text.contains("[FAIL] control plane: deployment weft/weft-control not found"),
        "{text}"
    );
    kube.stop();
    let (ok, text) = check(&kubeconfig).await;
    println!("{text}");
    assert!(!ok);
    assert!(
        text.contains("[FAIL] kubernetes API: unreachable"),
        "{text}"
    );
}
