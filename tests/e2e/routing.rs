//! Routes on real processes: a service split between versions by weight, weights changed
//! live, a rule's own timeout, a retry that draws its backend again, a request no rule
//! matches, a bad routes edit that keeps the last good routes, and failover between zones.

use std::time::{Duration, Instant};

use weft_tests::backend::Backend;
use weft_tests::client::get;
use weft_tests::discovery::{self, Ep};
use weft_tests::eventually;
use weft_tests::load::{failures, Load, Outcome};
use weft_tests::mesh::{Mesh, NODE_B};
use weft_tests::proxy::{metric, WeftProxy};
use weft_tests::split::{answered_by, weights, Split};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_holds_its_weights_and_a_live_change_loses_no_request() {
    let split = Split::start(90, 10).await;
    let a = &split.mesh.a;
    let load = Load::start(a.outbound, "world", "/echo", 400.0);
    eventually("2000 answers", Duration::from_secs(30), || async {
        (load.snapshot().len() >= 2000).then_some(())
    })
    .await;
    let first = load.snapshot();
    let answered: Vec<&Outcome> = first.iter().take(2000).collect();
    let v2 = split.share_of_v2(&answered);
    println!(
        "split 90/10: world-v2 took {:.1} % of 2000 requests",
        100.0 * v2
    );
    assert!((0.07..=0.13).contains(&v2), "v2 took {v2}");

    // Live: 50/50, while the load goes on.
    let changed_at = load.started.elapsed();
    let edit = Instant::now();
    split.publish(&split.split_rule(50, 50), &["split"]).await;
    eventually("node A applies 50/50", Duration::from_secs(20), || async {
        (weights(a).await == [50, 50]).then_some(())
    })
    .await;
    let applied = edit.elapsed();
    let after = load.started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let outcomes = load.finish().await;
    let later: Vec<&Outcome> = outcomes.iter().filter(|o| o.at > after).collect();
    let v2 = split.share_of_v2(&later);
    let failed = failures(&outcomes);
    println!(
        "weights 90/10 → 50/50 applied in {applied:?}; then world-v2 took {:.1} % of {}; {} requests in all, {} failed (change at {changed_at:?})",
        100.0 * v2,
        later.len(),
        outcomes.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        later.len() >= 600 && (0.40..=0.60).contains(&v2),
        "v2 took {v2}"
    );

    // The route's series: what callers saw per route, what each backend did.
    let text = a.metrics().await;
    let requests = metric(
        &text,
        "weft_route_requests_total{service=\"world\",route=\"split\"}",
    )
    .unwrap();
    assert!(requests as usize >= outcomes.len() - 5, "{requests}");
    let v1_ok = metric(
        &text,
        "weft_route_backend_attempts_total{service=\"world\",route=\"split\",backend=\"world-v1\",classification=\"success\"}",
    )
    .unwrap();
    assert!(v1_ok > 1800.0, "{v1_ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_draws_its_backend_again_so_a_failing_canary_costs_callers_nothing() {
    let split = Split::start(50, 50).await;
    split.v2.set_failing(true);
    let a = &split.mesh.a;
    let load = Load::start(a.outbound, "world", "/echo", 100.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let outcomes = load.finish().await;
    let failed = failures(&outcomes);
    let text = a.metrics().await;
    let attempts = |backend: &str, class: &str| {
        metric(&text, &format!("weft_route_backend_attempts_total{{service=\"world\",route=\"split\",backend=\"{backend}\",classification=\"{class}\"}}")).unwrap_or(0.0)
    };
    let (v2_failed, v1_ok) = (
        attempts("world-v2", "failure"),
        attempts("world-v1", "success"),
    );
    let seen_failed = metric(
        &text,
        "weft_route_responses_total{service=\"world\",route=\"split\",classification=\"failure\"}",
    )
    .unwrap_or(0.0);
    println!(
        "canary failing: {} requests, {} failed for callers; world-v2's attempts failed {v2_failed}, world-v1's succeeded {v1_ok}; the route's failed responses {seen_failed}",
        outcomes.len(),
        failed.len()
    );
    assert!(outcomes.len() >= 250);
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        v2_failed >= 5.0,
        "the canary's own failures show: {v2_failed}"
    );
    assert_eq!(seen_failed, 0.0);
    // Once failure accrual ejects the canary, its share goes to world-v1 at the first draw.
    assert!(v1_ok >= outcomes.len() as f64 - 5.0, "{v1_ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_match_by_precedence_with_their_own_timeouts_and_unmatched_requests_get_404() {
    let split = Split::start(1, 0).await;
    split.v2.set_latency(5_000);
    let routes = "[[services.world.routes]]\nname = \"api\"\nmatches = [{ path = { prefix = \"/api\" } }]\nbackends = [{ service = \"world-v1\" }]\n\n[[services.world.routes]]\nname = \"beta\"\nmatches = [{ path = { prefix = \"/api\" }, headers = [{ name = \"x-beta\", value = \"1\" }] }]\nbackends = [{ service = \"world-v2\" }]\ntimeout = { total = \"300ms\" }\n";
    split.publish(routes, &["api", "beta"]).await;
    let a = split.mesh.a.outbound;
    let plain = eventually("the api rule", Duration::from_secs(10), || async {
        let r = get(a, "world", "/api/echo").await.ok()?;
        (r.header("x-backend") == Some(&split.v1.addr.to_string())).then_some(r)
    })
    .await;
    assert_eq!(plain.status, 200);
    // More header conditions win; that rule's 300 ms timeout holds, not the service's 30 s.
    let started = Instant::now();
    let beta = weft_tests::client::curl(&[
        "-s",
        "-i",
        "-x",
        &a.to_string(),
        "-H",
        "x-beta: 1",
        "http://world/api/echo",
    ])
    .await;
    let took = started.elapsed();
    println!("beta rule answered {} in {took:?}", beta.status);
    assert_eq!(beta.status, 504);
    // Node A's timer or node B's (which got the time left with the request), whichever
    // fires first.
    let cause = beta.header("weft-error");
    assert!(
        matches!(cause, Some("timeout" | "deadline exceeded")),
        "{cause:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    // No rule for `/other`: 404, as Gateway API answers.
    let none = get(a, "world", "/other").await.unwrap();
    assert_eq!(none.status, 404);
    assert_eq!(none.header("weft-error"), Some("no route"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_routes_edit_is_refused_with_its_line_and_the_last_good_routes_stay() {
    let split = Split::start(0, 1).await;
    let a = &split.mesh.a;
    let first = get(a.outbound, "world", "/echo").await.unwrap();
    assert_eq!(first.header("x-backend"), Some(&*split.v2.addr.to_string()));
    let errors = |t: &str| metric(t, "weft_discovery_errors_total").unwrap_or(0.0);
    let before = errors(&a.metrics().await);
    let bad = [
        "[[services.world.routes]]\nname = \"split\"\nbackends = [{ service = \"world-v9\" }]\n",
        "[[services.world.routes]]\nname = \"split\"\nbackends = [{ service = \"world-v1\", weight = 0 }]\n",
        "[[services.world.routes]]\nname = \"split\"\nbackends = [{ service = \"world-v1\" }]\nmatches = [{ path = { regex = \"/a.*\" } }]\n",
    ];
    for (i, routes) in bad.iter().enumerate() {
        discovery::write_raw(&split.mesh.discovery, &split.text(routes));
        eventually("the edit refused", Duration::from_secs(10), || async {
            (errors(&a.metrics().await) >= before + i as f64 + 1.0).then_some(())
        })
        .await;
    }
    let log = a.log();
    for cause in ["world-v9 is no service", "sum to 0", "regex"] {
        assert!(log.contains(cause), "no {cause:?} in the log:\n{log}");
    }
    assert!(log.contains("discovery.toml:"), "the file is named:\n{log}");
    for _ in 0..20 {
        let r = get(a.outbound, "world", "/echo").await.unwrap();
        assert_eq!(r.header("x-backend"), Some(&*split.v2.addr.to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_moves_to_the_next_zone_while_the_first_fails_and_comes_back() {
    let mesh = Mesh::start().await;
    let zone_a = [Backend::start(NODE_B).await, Backend::start(NODE_B).await];
    let zone_b = Backend::start(NODE_B).await;
    let ep = |b: &Backend, zone: &str| {
        let mut e = Ep::on(b.addr, mesh.b.inbound);
        e.labels.push(("zone".into(), zone.into()));
        e
    };
    let eps = vec![
        ep(&zone_b, "zone-b"),
        ep(&zone_a[0], "zone-a"),
        ep(&zone_a[1], "zone-a"),
    ];
    let text = format!(
        "{}failover = [\"zone-a\", \"zone-b\"]\n",
        discovery::render(&[("world", eps.clone())])
    );
    discovery::write_raw(&mesh.discovery, &text);
    mesh.a.wait_for("world", &eps, true).await;

    let in_a = |o: &&Outcome| {
        zone_a
            .iter()
            .any(|b| o.backend.as_deref() == Some(&*b.addr.to_string()))
    };
    let load = Load::start(mesh.a.outbound, "world", "/echo", 100.0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let healthy = load.snapshot();
    assert!(
        healthy.len() >= 50,
        "{} answers in the first second",
        healthy.len()
    );
    assert!(
        healthy.iter().all(|o| in_a(&o)),
        "zone-b took traffic while zone-a was healthy"
    );

    // zone-a answers 500 while discovery still lists it: failure accrual moves the traffic.
    let failing_at = load.started.elapsed();
    for b in &zone_a {
        b.set_failing(true);
    }
    let moved = eventually("traffic in zone-b", Duration::from_secs(20), || async {
        let now = load.snapshot();
        let recent: Vec<&Outcome> = now.iter().filter(|o| o.at > failing_at).collect();
        let tail = &recent[recent.len().saturating_sub(50)..];
        (tail.len() == 50 && tail.iter().all(|o| !in_a(o))).then(|| tail[0].at - failing_at)
    })
    .await;

    let recovered_at = load.started.elapsed();
    for b in &zone_a {
        b.set_failing(false);
    }
    let back = eventually(
        "traffic back in zone-a",
        Duration::from_secs(90),
        || async {
            let now = load.snapshot();
            let recent: Vec<&Outcome> = now.iter().filter(|o| o.at > recovered_at).collect();
            let tail = &recent[recent.len().saturating_sub(50)..];
            (tail.len() == 50 && tail.iter().all(in_a)).then(|| tail[0].at - recovered_at)
        },
    )
    .await;
    let outcomes = load.finish().await;
    let failed = failures(&outcomes);
    println!(
        "failover: moved to zone-b within {moved:?} of zone-a failing, back within {back:?} of its recovery; {} requests, {} failed for callers",
        outcomes.len(),
        failed.len()
    );
    // Retries on (the default): each failed attempt went again, to the next zone.
    assert!(failed.is_empty(), "{failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_travel_from_the_control_plane_and_a_weight_change_reaches_the_proxies() {
    let tmp = weft_tests::TempDir::new("routes-control");
    let disc = tmp.path("discovery.toml");
    discovery::write(&disc, &[]);
    let control = weft_tests::control::WeftControl::start_with(
        "127.0.0.1",
        &["--discovery-file".as_ref(), disc.as_os_str()],
    )
    .await;
    let a = WeftProxy::start_control("127.0.0.2", control.destination, &[]).await;
    let b = WeftProxy::start_control(NODE_B, control.destination, &[]).await;
    let (v1, v2) = (Backend::start(NODE_B).await, Backend::start(NODE_B).await);
    let text = |w1: u32, w2: u32| {
        let services = [
            ("world", vec![]),
            ("world-v1", vec![Ep::on(v1.addr, b.inbound)]),
            ("world-v2", vec![Ep::on(v2.addr, b.inbound)]),
        ];
        format!(
            "{}[[services.world.routes]]\nname = \"split\"\nbackends = [{{ service = \"world-v1\", weight = {w1} }}, {{ service = \"world-v2\", weight = {w2} }}]\n",
            discovery::render(&services)
        )
    };
    let started = Instant::now();
    discovery::write_raw(&disc, &text(0, 1));
    answered_by(
        "world-v2 takes world's requests",
        Duration::from_secs(30),
        a.outbound,
        v2.addr,
    )
    .await;
    let first = started.elapsed();
    let routes_sent = || async {
        let text = control.admin_get("/metrics").await.1;
        metric(
            &text,
            "weft_control_destination_updates_total{kind=\"routes\"}",
        )
        .unwrap_or(0.0)
    };
    let before_change = routes_sent().await;
    let changed = Instant::now();
    discovery::write_raw(&disc, &text(1, 0));
    answered_by(
        "world-v1 takes them after the change",
        Duration::from_secs(30),
        a.outbound,
        v1.addr,
    )
    .await;
    let change = changed.elapsed();
    // Once applied, every request follows the new weights.
    for _ in 0..50 {
        let r = get(a.outbound, "world", "/echo").await.unwrap();
        assert_eq!(r.header("x-backend"), Some(&*v1.addr.to_string()));
    }
    let sent = routes_sent().await - before_change;
    println!("routes over the Destination API: first in force after {first:?}, a weight change after {change:?}; the change took {sent} routes messages");
    // One per proxy that follows world's routes: the change went as a message, not a restart.
    assert!(sent >= 1.0, "no routes message for the change");
}

/// The `Accepted` condition of the route's status for its first parent: (status, message).
fn accepted(route: &serde_json::Value) -> Option<(String, String)> {
    let conditions = route["status"]["parents"][0]["conditions"].as_array()?;
    let c = conditions.iter().find(|c| c["type"] == "Accepted")?;
    Some((
        c["status"].as_str()?.to_string(),
        c["message"].as_str()?.to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_httproute_is_created_changed_refused_and_deleted_and_each_reaches_the_proxies() {
    use weft_tests::kube_objects as k8s;
    let mesh = weft_tests::kube_mesh::KubeMesh::start().await;
    let (v1, v2) = (Backend::start(NODE_B).await, Backend::start(NODE_B).await);
    let own = Backend::start(NODE_B).await;
    for (svc, b, pod) in [
        ("world-v1", &v1, "v1-0"),
        ("world-v2", &v2, "v2-0"),
        ("world", &own, "w-0"),
    ] {
        if svc != "world" {
            mesh.kube
                .apply("services", k8s::service("default", svc, 80));
        }
        mesh.add_instance_of(b, svc, "node-b", pod, "v1");
    }
    let a = mesh.a.outbound;
    answered_by(
        "world's own instance answers",
        Duration::from_secs(30),
        a,
        own.addr,
    )
    .await;

    let t = Instant::now();
    mesh.kube.apply(
        "httproutes",
        k8s::http_route(
            "default",
            "world-split",
            "world",
            &[("world-v1", 0), ("world-v2", 1)],
        ),
    );
    answered_by(
        "the route sends world to world-v2",
        Duration::from_secs(30),
        a,
        v2.addr,
    )
    .await;
    let created = t.elapsed();
    let status = eventually(
        "the route accepted in its status",
        Duration::from_secs(30),
        || async {
            let r = mesh.kube.get("httproutes", "default", "world-split")?;
            accepted(&r).filter(|(s, _)| s == "True").map(|_| r)
        },
    )
    .await;
    assert_eq!(
        status["status"]["parents"][0]["controllerName"],
        "weft.io/mesh"
    );

    let t = Instant::now();
    mesh.kube.apply(
        "httproutes",
        k8s::http_route(
            "default",
            "world-split",
            "world",
            &[("world-v1", 1), ("world-v2", 0)],
        ),
    );
    answered_by(
        "a weight change sends it to world-v1",
        Duration::from_secs(30),
        a,
        v1.addr,
    )
    .await;
    let changed = t.elapsed();

    // A filter weft does not support: refused in the status, the last good rules stay.
    let mut bad = k8s::http_route("default", "world-split", "world", &[("world-v2", 1)]);
    bad["spec"]["rules"][0]["filters"] = serde_json::json!([{"type": "RequestHeaderModifier"}]);
    mesh.kube.apply("httproutes", bad);
    let (_, why) = eventually(
        "the bad edit refused in the status",
        Duration::from_secs(30),
        || async {
            accepted(&mesh.kube.get("httproutes", "default", "world-split")?)
                .filter(|(s, _)| s == "False")
        },
    )
    .await;
    assert!(
        why.contains("filters are not supported") && why.contains("stay in force"),
        "{why}"
    );
    for _ in 0..20 {
        let r = get(a, "world", "/echo").await.unwrap();
        assert_eq!(
            r.header("x-backend"),
            Some(&*v1.addr.to_string()),
            "the last good rules hold"
        );
    }

    let t = Instant::now();
    mesh.kube.delete("httproutes", "default", "world-split");
    answered_by(
        "without the route, world's own instance again",
        Duration::from_secs(30),
        a,
        own.addr,
    )
    .await;
    let deleted = t.elapsed();
    println!("HTTPRoute through the API server: created → in force in {created:?}, weights changed in {changed:?}, deleted in {deleted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_gateway_api_still_serves_its_services() {
    let mesh = weft_tests::kube_mesh::KubeMesh::start_without_gateway_api().await;
    let own = Backend::start(NODE_B).await;
    mesh.add_instance(&own, "node-b", "w-0", "v1");
    let a = mesh.a.outbound;
    let r = eventually("world answers", Duration::from_secs(30), || async {
        let r = get(a, "world", "/echo").await.ok()?;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(r.header("x-backend"), Some(&*own.addr.to_string()));
    let text = mesh.control.admin_get("/metrics").await.1;
    assert!(
        metric(
            &text,
            "weft_control_kube_watch_errors_total{resource=\"httproutes\"}"
        )
        .is_none(),
        "a missing CRD is no error:\n{text}"
    );
}
