//! `weft control` against a fake Kubernetes API server (real list/watch protocol, real
//! Kubernetes JSON), with real proxies subscribed over the Destination API and real traffic.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use weft_tests::backend::Backend;
use weft_tests::client::curl;
use weft_tests::control::WeftControl;
use weft_tests::fake_kube::FakeKube;
use weft_tests::kube_mesh::KubeMesh;
use weft_tests::kube_objects as k8s;
use weft_tests::load::{failures, Load};
use weft_tests::mesh::{NODE_A, NODE_B};
use weft_tests::proxy::WeftProxy;

/// Polls proxy A's view of `world` until `want` holds, and says how long that took.
async fn reaches_a(
    mesh: &KubeMesh,
    what: &str,
    want: impl Fn(&BTreeSet<String>) -> bool,
) -> Duration {
    let start = Instant::now();
    weft_tests::eventually(what, Duration::from_secs(5), || async {
        let got: BTreeSet<String> = mesh
            .endpoints_at_a()
            .await
            .iter()
            .filter_map(|e| e["addr"].as_str().map(str::to_string))
            .collect();
        want(&got).then(|| start.elapsed())
    })
    .await
}

fn set(addrs: &[&Backend]) -> BTreeSet<String> {
    addrs.iter().map(|b| b.addr.to_string()).collect()
}

/// Waits until proxy A sends to `backend` through `proxy`'s inbound: the control plane
/// learns proxy pods and EndpointSlices from separate watches, so an endpoint may be
/// offered a moment before its node's proxy is known (sent direct, then through it).
async fn through_proxy_at_a(mesh: &KubeMesh, backend: &Backend, proxy: &WeftProxy) -> Value {
    let addr = backend.addr.to_string();
    let inbound = proxy.inbound.to_string();
    weft_tests::eventually(
        "the endpoint's node proxy",
        Duration::from_secs(5),
        || async {
            let eps = mesh.endpoints_at_a().await;
            eps.into_iter()
                .find(|e| e["addr"] == addr.as_str() && e["node"] == inbound.as_str())
        },
    )
    .await
}

/// Waits until proxy A routes `world` (the proxy subscribes when a request first names it;
/// the fake API server's changes reach the control plane a moment later).
async fn routes(mesh: &KubeMesh) {
    weft_tests::eventually("world routed", Duration::from_secs(5), || async {
        let rsp = curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
        (rsp.status == 200).then_some(())
    })
    .await;
}

async fn backends_hit(mesh: &KubeMesh, n: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        let rsp = curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
        assert_eq!(rsp.status, 200, "{}", rsp.text());
        seen.insert(rsp.header("x-backend").unwrap_or_default().to_string());
    }
    seen
}

#[tokio::test]
async fn endpointslices_become_routes_through_the_node_proxies() {
    let mesh = KubeMesh::start().await;
    let on_a = Backend::start(NODE_A).await;
    let on_b = Backend::start(NODE_B).await;
    mesh.add_instance(&on_a, "node-a", "world-a", "v1");
    mesh.add_instance(&on_b, "node-b", "world-b", "v2");
    routes(&mesh).await;
    reaches_a(&mesh, "both instances", |got| *got == set(&[&on_a, &on_b])).await;
    assert_eq!(backends_hit(&mesh, 20).await, set(&[&on_a, &on_b]));

    // Each endpoint carries its node's proxy, pod, node, zone and version.
    let b = through_proxy_at_a(&mesh, &on_b, &mesh.b).await;
    assert_eq!(b["labels"]["pod"], "world-b");
    assert_eq!(b["labels"]["node"], "node-b");
    assert_eq!(b["labels"]["zone"], "zone-node-b");
    assert_eq!(b["labels"]["version"], "v2");
    // The remote instance was reached through node-b's inbound side.
    assert!(
        mesh.b
            .sample(&format!(
                "weft_requests_total{{direction=\"inbound\",service=\"world\",endpoint=\"{}\"}}",
                on_b.addr
            ))
            .await
            .unwrap_or(0.0)
            > 0.0,
        "inbound on node-b saw no request:\n{}",
        mesh.b.metrics().await
    );

    // Every proxy and service shares one watch per resource.
    let rsp = curl(&[
        "-x",
        &format!("http://{}", mesh.b.outbound),
        "http://world/echo",
    ])
    .await;
    assert_eq!(rsp.status, 200);
    let rsp = curl(&["-x", &mesh.proxy_flag(), "http://nosuch/echo"]).await;
    assert_eq!(rsp.status, 502);
    assert_eq!(rsp.header("weft-error"), Some("unknown service"));
    assert_eq!(mesh.kube.count("watch"), 6, "one watch per resource");
    assert_eq!(mesh.kube.count("list"), 6, "one list per resource");
    let (status, metrics) = mesh.control.admin_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("weft_control_synced 1"), "{metrics}");
}

#[tokio::test]
async fn every_kind_of_change_reaches_a_subscribed_proxy_within_a_second() {
    let mesh = KubeMesh::start().await;
    let first = Backend::start(NODE_B).await;
    mesh.add_instance(&first, "node-b", "world-1", "v1");
    routes(&mesh).await;
    reaches_a(&mesh, "first instance", |got| *got == set(&[&first])).await;
    assert_eq!(backends_hit(&mesh, 3).await, set(&[&first]));
    let mut took = Vec::new();

    // Scale up: a second pod on node-a.
    let second = Backend::start(NODE_A).await;
    mesh.add_instance(&second, "node-a", "world-2", "v1");
    took.push((
        "scale up",
        reaches_a(&mesh, "scale up", |g| *g == set(&[&first, &second])).await,
    ));
    assert_eq!(backends_hit(&mesh, 20).await, set(&[&first, &second]));

    // A pod turning unready leaves at once, and gets no traffic.
    mesh.set_instance(second.addr, "node-a", "world-2", false, false);
    took.push((
        "unready",
        reaches_a(&mesh, "unready", |g| *g == set(&[&first])).await,
    ));
    assert_eq!(backends_hit(&mesh, 10).await, set(&[&first]));
    mesh.set_instance(second.addr, "node-a", "world-2", true, false);
    took.push((
        "ready again",
        reaches_a(&mesh, "ready", |g| *g == set(&[&first, &second])).await,
    ));

    // A terminating pod leaves at once.
    mesh.set_instance(second.addr, "node-a", "world-2", false, true);
    took.push((
        "terminating",
        reaches_a(&mesh, "terminating", |g| *g == set(&[&first])).await,
    ));

    // Scale down.
    mesh.set_instance(second.addr, "node-a", "world-2", true, false);
    reaches_a(&mesh, "back", |g| *g == set(&[&first, &second])).await;
    mesh.remove_instance("world-2");
    took.push((
        "scale down",
        reaches_a(&mesh, "scale down", |g| *g == set(&[&first])).await,
    ));

    // A node removed takes its endpoints with it.
    mesh.add_instance(&second, "node-a", "world-2", "v1");
    reaches_a(&mesh, "back", |g| *g == set(&[&first, &second])).await;
    mesh.kube.delete("nodes", "", "node-b");
    took.push((
        "node removed",
        reaches_a(&mesh, "node removed", |g| *g == set(&[&second])).await,
    ));
    assert_eq!(backends_hit(&mesh, 10).await, set(&[&second]));

    // A service deleted is unknown; recreated, it routes again.
    let deleted = Instant::now();
    mesh.kube.delete("services", "default", "world");
    let gone = weft_tests::eventually("world unknown", Duration::from_secs(5), || async {
        let rsp = curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
        (rsp.status == 502 && rsp.header("weft-error") == Some("unknown service"))
            .then(|| deleted.elapsed())
    })
    .await;
    took.push(("service deleted", gone));
    let recreated = Instant::now();
    mesh.kube
        .apply("services", k8s::service("default", "world", 80));
    let back = weft_tests::eventually("world routes again", Duration::from_secs(5), || async {
        let rsp = curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
        (rsp.status == 200).then(|| recreated.elapsed())
    })
    .await;
    took.push(("service recreated", back));

    for (what, t) in &took {
        println!("{what}: reached proxy A after {t:?}");
        assert!(*t < Duration::from_secs(1), "{what} took {t:?}");
    }
}

#[tokio::test]
async fn dropped_watches_410_gone_and_bookmarks_are_survived() {
    let mesh = KubeMesh::start().await;
    let first = Backend::start(NODE_B).await;
    mesh.add_instance(&first, "node-b", "world-1", "v1");
    routes(&mesh).await;
    reaches_a(&mesh, "first instance", |got| *got == set(&[&first])).await;

    // Every watch connection dropped: the watchers resume from their resourceVersion.
    let lists = mesh.kube.count("list");
    mesh.kube.drop_watches();
    let second = Backend::start(NODE_A).await;
    mesh.add_instance(&second, "node-a", "world-2", "v1");
    let t = reaches_a(&mesh, "change after dropped watches", |g| {
        *g == set(&[&first, &second])
    })
    .await;
    println!("change after dropped watches reached proxy A in {t:?}");
    assert!(t < Duration::from_secs(1));
    assert_eq!(
        mesh.kube.count("list"),
        lists,
        "a dropped watch resumes, no re-list"
    );
    // Bookmarks (asked for by the watchers, sent every 200 ms) move the resume point on
    // without events or re-lists.
    weft_tests::eventually("bookmarks sent", Duration::from_secs(5), || async {
        (mesh.kube.count("bookmark") >= 8).then_some(())
    })
    .await;
    assert_eq!(mesh.kube.count("list"), lists, "bookmarks cause no re-list");

    // History compacted while watches are down: resuming gets 410 Gone, so they re-list;
    // a change made meanwhile is not lost.
    mesh.kube.compact();
    mesh.kube.drop_watches();
    mesh.remove_instance("world-1");
    let t = reaches_a(&mesh, "change across 410", |g| *g == set(&[&second])).await;
    println!("change across 410 Gone reached proxy A in {t:?}");
    assert!(t < Duration::from_secs(1), "took {t:?}");
    weft_tests::eventually("re-listed after 410", Duration::from_secs(5), || async {
        (mesh.kube.count("list") > lists).then_some(())
    })
    .await;
    let third = Backend::start(NODE_B).await;
    mesh.add_instance(&third, "node-b", "world-3", "v1");
    let t = reaches_a(&mesh, "change after re-list", |g| {
        *g == set(&[&second, &third])
    })
    .await;
    assert!(t < Duration::from_secs(1), "took {t:?}");
    assert_eq!(backends_hit(&mesh, 20).await, set(&[&second, &third]));
}

#[tokio::test]
async fn an_api_server_down_at_start_is_waited_for() {
    let kube = FakeKube::new();
    let addr = weft_tests::free_addr("127.0.0.1");
    let dir = weft_tests::TempDir::new("kube-down");
    let kubeconfig = dir.path("kubeconfig");
    kube.kubeconfig(addr, &kubeconfig);
    let control = WeftControl::start("127.0.0.1", &kubeconfig).await;
    let proxy = WeftProxy::start_control(NODE_A, control.destination, &[]).await;
    let backend = Backend::start(NODE_B).await;

    // Not ready, and a proxy asking about a service is told so, not told it is unknown.
    assert_eq!(control.admin_get("/ready").await.0, 503);
    let asked = Instant::now();
    let rsp = curl(&[
        "-x",
        &format!("http://{}", proxy.outbound),
        "http://world/echo",
    ])
    .await;
    assert_eq!(rsp.status, 503, "{}", rsp.text());
    assert_eq!(rsp.header("weft-error"), Some("discovery unavailable"));
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );

    // The API server comes up: the control plane lists, and traffic flows.
    kube.apply("nodes", k8s::node("node-a", NODE_A, "z"));
    kube.apply("services", k8s::service("default", "world", 80));
    kube.apply(
        "pods",
        k8s::app_pod("default", "world-1", "node-a", NODE_B, "v1"),
    );
    kube.apply(
        "endpointslices",
        k8s::slice(
            "default",
            "world-1",
            "world",
            backend.addr.port(),
            &[k8s::Ep {
                ip: NODE_B,
                node: "node-a",
                pod: "world-1",
                ready: true,
                terminating: false,
            }],
        ),
    );
    kube.serve(addr).await;
    control.wait_ready().await;
    let rsp = weft_tests::eventually(
        "traffic once the API is up",
        Duration::from_secs(10),
        || async {
            let rsp = curl(&[
                "-x",
                &format!("http://{}", proxy.outbound),
                "http://world/echo",
            ])
            .await;
            (rsp.status == 200).then_some(rsp)
        },
    )
    .await;
    assert_eq!(
        rsp.header("x-backend"),
        Some(backend.addr.to_string().as_str())
    );
    let (_, metrics) = control.admin_get("/metrics").await;
    assert!(
        metrics.contains("weft_control_kube_watch_errors_total{resource=\"pods\"}"),
        "the outage was counted:\n{metrics}"
    );
}

#[tokio::test]
async fn restarting_the_control_plane_under_load_fails_no_request() {
    let mut mesh = KubeMesh::start().await;
    let on_a = Backend::start(NODE_A).await;
    let on_b = Backend::start(NODE_B).await;
    mesh.add_instance(&on_a, "node-a", "world-a", "v1");
    mesh.add_instance(&on_b, "node-b", "world-b", "v1");
    routes(&mesh).await;
    reaches_a(&mesh, "both instances", |g| *g == set(&[&on_a, &on_b])).await;

    let load = Load::start(mesh.a.outbound, "world", "/echo", 100.0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    mesh.control.restart().await;
    mesh.control.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A second restart while the API server changes: the proxy resynchronises on reconnect.
    mesh.control.restart().await;
    let third = Backend::start(NODE_B).await;
    mesh.add_instance(&third, "node-b", "world-c", "v1");
    reaches_a(&mesh, "change made across a restart", |g| {
        *g == set(&[&on_a, &on_b, &third])
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let outcomes = load.finish().await;
    let failed = failures(&outcomes);
    println!(
        "{} requests across two control-plane restarts, {} failed",
        outcomes.len(),
        failed.len()
    );
    assert!(outcomes.len() > 300, "{}", outcomes.len());
    assert!(
        failed.is_empty(),
        "failed: {:?}",
        &failed[..failed.len().min(5)]
    );
    let hit: BTreeSet<_> = outcomes.iter().filter_map(|o| o.backend.clone()).collect();
    assert!(hit.contains(&third.addr.to_string()), "{hit:?}");
}

#[tokio::test]
async fn many_proxies_and_services_share_one_watch_per_resource() {
    const SERVICES: usize = 300;
    const ROUTED: usize = 100;
    let mesh = KubeMesh::start().await;
    let backend = Backend::start(NODE_B).await;
    for i in 0..SERVICES {
        let name = format!("svc-{i}");
        mesh.kube
            .apply("services", k8s::service("default", &name, 80));
        mesh.add_instance_of(&backend, &name, "node-b", &format!("{name}-0"), "v1");
    }
    weft_tests::eventually("last service known", Duration::from_secs(10), || async {
        let (_, m) = mesh.control.admin_get("/metrics").await;
        m.contains(&format!("weft_control_services {}", SERVICES + 1))
            .then_some(())
    })
    .await;

    let started = Instant::now();
    for proxy in [&mesh.a, &mesh.b] {
        for i in 0..ROUTED {
            let rsp = weft_tests::client::get(proxy.outbound, &format!("svc-{i}"), "/echo")
                .await
                .expect("request through the proxy");
            assert_eq!(rsp.status, 200, "svc-{i}: {}", rsp.text());
        }
    }
    println!(
        "{} first requests (each opening a destination stream) in {:?}",
        2 * ROUTED,
        started.elapsed()
    );
    let (_, metrics) = mesh.control.admin_get("/metrics").await;
    let streams = weft_tests::proxy::metric(&metrics, "weft_control_destination_streams").unwrap();
    assert!(streams >= (2 * ROUTED) as f64, "{streams} streams");
    assert_eq!(mesh.kube.count("watch"), 6, "still one watch per resource");
    assert_eq!(mesh.kube.count("list"), 6);

    // One service scales up: both subscribed proxies see it within a second.
    let extra = Backend::start(NODE_A).await;
    let changed = Instant::now();
    mesh.add_instance_of(&extra, "svc-7", "node-a", "svc-7-extra", "v1");
    for proxy in [&mesh.a, &mesh.b] {
        weft_tests::eventually("svc-7 scaled up", Duration::from_secs(5), || async {
            let (_, body) = proxy.admin_get("/endpoints").await;
            body.contains(&extra.addr.to_string()).then_some(())
        })
        .await;
    }
    let took = changed.elapsed();
    println!(
        "{SERVICES} services, {streams} streams: a change reached both proxies in {took:?}; \
         control plane RSS {} KiB",
        mesh.control.rss_kib()
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

/// Through a tunnel, a Kubernetes service is reached on the ports its Service has, which
/// the control plane sends with its endpoints.
#[tokio::test]
async fn a_tunnel_reaches_a_kubernetes_service_on_its_ports_only() {
    let mesh = KubeMesh::start().await;
    let on_b = Backend::start(NODE_B).await;
    mesh.add_instance(&on_b, "node-b", "world-b", "v1");
    routes(&mesh).await;
    let rsp = curl(&["-p", "-x", &mesh.proxy_flag(), "http://world/echo"]).await;
    assert_eq!(rsp.status, 200, "{}", rsp.raw_head);
    let mut s = tokio::net::TcpStream::connect(mesh.a.outbound)
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut s,
        b"CONNECT world:8080 HTTP/1.1\r\nHost: world:8080\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    let (_, endpoints) = mesh.a.admin_get("/endpoints").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}\n{endpoints}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("weft-error: no such port"),
        "{answer}"
    );
}

/// A tenant who can make pods — labelled like weft's proxies, with an `inbound` port and
/// even an owner reference naming a `weft-proxy` DaemonSet — in their own namespace never
/// has the mesh send a node's traffic to theirs; only weft's namespace counts.
#[tokio::test]
async fn a_tenant_pod_labelled_like_a_proxy_never_becomes_a_nodes_proxy() {
    let mesh = KubeMesh::start().await;
    let on_b = Backend::start(NODE_B).await;
    // The tenant's "proxy" listens too, and would answer anything sent to it.
    let trap = Backend::start(NODE_B).await;
    // Named to sort first, so neither order nor name can pick it.
    mesh.kube.apply(
        "pods",
        k8s::pod_like_a_proxy("tenant", "a-weft-proxy", "node-b", trap.addr, true),
    );
    mesh.add_instance(&on_b, "node-b", "world-b", "v1");
    routes(&mesh).await;
    reaches_a(&mesh, "the node-b instance", |got| *got == set(&[&on_b])).await;
    through_proxy_at_a(&mesh, &on_b, &mesh.b).await;
    assert_eq!(backends_hit(&mesh, 10).await, set(&[&on_b]));
    // Still so after the node's real proxy is replaced and the tenant's is updated.
    mesh.kube
        .apply("pods", k8s::proxy_pod("node-b", mesh.b.inbound, true));
    mesh.kube.apply(
        "pods",
        k8s::pod_like_a_proxy("tenant", "a-weft-proxy", "node-b", trap.addr, true),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let eps = mesh.endpoints_at_a().await;
    assert_eq!(eps[0]["node"], mesh.b.inbound.to_string(), "{eps:?}");
    assert_eq!(trap.count(), 0, "the tenant's pod got traffic");
}

/// With identity on, a proxy proves its node with the projected ServiceAccount token the
/// kubelet gave its pod: TokenReview says whose token it is and where its pod runs. A
/// token of another account, or made for another audience, proves nothing; a token from
/// before Kubernetes 1.30 (naming its pod, not its node) is placed through the pod. The
/// dashboard proves its account the same way; `weft check` reads every leaf.
#[tokio::test]
async fn a_proxy_proves_its_node_with_its_pods_service_account_token() {
    let mesh = KubeMesh::start_mtls().await;
    for p in [&mesh.a, &mesh.b] {
        weft_tests::identity::wait_ready(p).await;
    }
    let world = Backend::start(NODE_B).await;
    mesh.add_instance(&world, "node-b", "world-1", "v1");
    routes(&mesh).await;
    // Across the nodes over mutual TLS, node-b's proxy checked to be node-b's.
    let ep = through_proxy_at_a(&mesh, &world, &mesh.b).await;
    assert_eq!(ep["tls"]["mode"], "mutual", "{ep}");
    assert_eq!(
        ep["tls"]["identity"], "spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-b",
        "{ep}"
    );
    // A request made now crosses node-b's inbound in mutual TLS (the first, made while the
    // control plane may not yet have known node-b's proxy, can have gone straight there).
    weft_tests::eventually(
        "a request over mTLS into node-b",
        Duration::from_secs(10),
        || async {
            let rsp = curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
            let metrics = mesh.b.metrics().await;
            let crossed = weft_tests::proxy::metric(
                &metrics,
                "weft_tcp_tls_accepted_connections_total{direction=\"inbound\"}",
            )
            .unwrap_or(0.0);
            (rsp.status == 200 && crossed >= 1.0).then_some(())
        },
    )
    .await;

    let ca = mesh.dir.path("ca");
    let kube = &mesh.kube;
    let audience = weft_tests::kube_mesh::TOKEN_AUDIENCE;
    kube.issue_token(
        "tenant",
        &[audience],
        "tenant:weft-proxy",
        "evil",
        Some("node-a"),
    );
    kube.issue_token(
        "for-the-api",
        &["https://kubernetes.default.svc"],
        "weft:weft-proxy",
        "weft-proxy-node-a",
        Some("node-a"),
    );
    kube.issue_token(
        "pre-1.30",
        &[audience],
        "weft:weft-proxy",
        "weft-proxy-node-b",
        None,
    );
    let cases = [
        ("tenant", "node-a", Some("the token is system:serviceaccount:tenant:weft-proxy's, not system:serviceaccount:weft:weft-proxy's")),
        ("for-the-api", "node-a", Some("the token was refused: token audiences are invalid")),
        ("unknown", "node-a", Some("the token was refused: invalid bearer token")),
        // Its pod is on node-b: it proves node-b, so claiming node-a fails, node-b works.
        ("pre-1.30", "node-a", Some("the token proves spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-b")),
        ("pre-1.30", "node-b", None),
    ];
    for (i, (token, node, refusal)) in cases.into_iter().enumerate() {
        let file = mesh.dir.path(&format!("{i}.token"));
        std::fs::write(&file, token).unwrap();
        let ip = format!("127.0.13.{}", 20 + i);
        let proxy =
            weft_tests::identity::proxy(&ip, node, mesh.control.destination, &ca, &file, &[]).await;
        match refusal {
            Some(why) => {
                let said = weft_tests::eventually(why, Duration::from_secs(10), || async {
                    let (status, body) = proxy.admin_get("/ready").await;
                    (status == 503 && body.contains(why)).then_some(body)
                })
                .await;
                assert!(
                    said.starts_with("not ready: no valid certificate"),
                    "{said}"
                );
            }
            None => weft_tests::identity::wait_ready(&proxy).await,
        }
    }
    assert!(kube.count("tokenreview") >= 6);

    // The dashboard proves its own account the same way, and gets an identity with no node.
    kube.issue_token(
        "dashboard",
        &[audience],
        "weft:weft-dashboard",
        "weft-dashboard-0",
        Some("node-a"),
    );
    let dashboard_token = mesh.dir.path("dashboard.token");
    std::fs::write(&dashboard_token, "dashboard\n").unwrap();
    let dash = weft_tests::identity::dashboard(
        mesh.control.destination,
        &ca,
        &dashboard_token,
        &[mesh.a.admin],
    )
    .await;
    let shown = weft_tests::identity::dashboard_identity(dash.addr("addr"), |id| {
        id["valid_until_unix_s"].is_u64()
    })
    .await;
    assert_eq!(
        shown["identity"], "spiffe://cluster.local/ns/weft/sa/weft-dashboard",
        "{shown}"
    );
    kube.apply("pods", k8s::dashboard_pod(dash.addr("addr")));

    // `weft check` reads each proxy's leaf through the API server's pod proxy, beside the
    // CA's own expiries.
    for name in ["weft-control", "weft-dashboard"] {
        kube.apply("deployments", k8s::deployment("weft", name, 1, 1));
    }
    let (secret, configmap) = k8s::identity_objects("weft", &ca, None);
    kube.apply("secrets", secret);
    kube.apply("configmaps", configmap);
    let (ok, text) = weft_tests::control::weft_check(&mesh.dir.path("kubeconfig")).await;
    println!("{text}");
    assert!(ok, "{text}");
    for node in ["node-a", "node-b"] {
        let line = format!(
            "[ok  ] leaf of the proxy on {node}: spiffe://cluster.local/ns/weft/sa/weft-proxy/node/{node}, expires in 23h 5"
        );
        assert!(text.contains(&line), "missing {line:?} in:\n{text}");
    }
    let line = "[ok  ] leaf of the dashboard: spiffe://cluster.local/ns/weft/sa/weft-dashboard, expires in 23h 5";
    assert!(text.contains(line), "missing {line:?} in:\n{text}");
    assert!(kube.count("proxy") >= 3);
}
