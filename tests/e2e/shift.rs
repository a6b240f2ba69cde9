//! `weft shift` on real processes: proxies on a discovery file, a dashboard collecting
//! their figures every second, steady load, and the shift command as a user runs it.
//! A healthy canary is promoted; one failing 5 % is rolled back in its first step with no
//! client failure (retries on); with too little traffic the shift holds and never promotes.
//! On Kubernetes it edits the HTTPRoute's weights.

use std::time::Duration;

use weft_tests::backend::Backend;
use weft_tests::eventually;
use weft_tests::load::{failures, Load};
use weft_tests::mesh::NODE_B;
use weft_tests::split::{answered_by, run_weft, weights, Ran, Split};

/// The dashboard over both proxies, scraping every second.
async fn dashboard(split: &Split) -> (tokio::process::Child, String) {
    let (a, b) = (
        split.mesh.a.admin.to_string(),
        split.mesh.b.admin.to_string(),
    );
    let (child, addr) = weft_tests::demo::start_dashboard(&["--proxy", &a, "--proxy", &b]).await;
    (child, format!("http://{addr}"))
}

/// Runs `weft shift world --to world-v2` with `flags`, judged every second over 10 s.
async fn shift(split: &Split, dashboard: &str, flags: &[&str]) -> Ran {
    let file = split.mesh.discovery.to_str().unwrap();
    let mut args = vec![
        "shift",
        "world",
        "--to",
        "world-v2",
        "--discovery-file",
        file,
    ];
    args.extend([
        "--dashboard",
        dashboard,
        "--judge-every",
        "1s",
        "--window",
        "10s",
    ]);
    args.extend(flags);
    run_weft(&args, Duration::from_secs(120)).await
}

/// The weights the discovery file gives world-v1 and world-v2 now.
fn file_weights(split: &Split) -> (u32, u32) {
    let text = std::fs::read_to_string(&split.mesh.discovery).unwrap();
    let w = |name: &str| -> u32 {
        let at = text
            .find(&format!("service = \"{name}\", weight = "))
            .unwrap();
        let rest = &text[at..];
        let n = rest.split("weight = ").nth(1).unwrap();
        n.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (w("world-v1"), w("world-v2"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_step_by_step() {
    let split = Split::start(100, 0).await;
    let (_dash, url) = dashboard(&split).await;
    let load = Load::start(split.mesh.a.outbound, "world", "/echo", 100.0);
    let run = shift(
        &split,
        &url,
        &[
            "--steps",
            "20,50",
            "--interval",
            "3s",
            "--min-requests",
            "30",
            // A healthy canary on a loaded two-core machine: p99 over a few dozen attempts
            // jitters more than 1.5×.
            "--max-p99-ratio",
            "10",
        ],
    )
    .await;
    assert!(run.ok, "{}", run.out);
    assert!(run.out.contains("promoted: world-v2"), "{}", run.out);
    assert_eq!(file_weights(&split), (0, 100));
    eventually("node A applies 0/100", Duration::from_secs(10), || async {
        (weights(&split.mesh.a).await == [0, 100]).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcomes = load.finish().await;
    let failed = failures(&outcomes);
    let last: Vec<_> = outcomes.iter().rev().take(20).collect();
    println!(
        "healthy canary promoted in {:?}; {} requests, {} failed",
        run.took,
        outcomes.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "{failed:?}");
    let v2 = split.v2.addr.to_string();
    assert!(last.iter().all(|o| o.backend.as_deref() == Some(&*v2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_failing_five_percent_is_rolled_back_in_its_first_step_unseen_by_clients() {
    let split = Split::start(100, 0).await;
    split.v2.set_failing_per_mille(50);
    let (_dash, url) = dashboard(&split).await;
    let load = Load::start(split.mesh.a.outbound, "world", "/echo", 200.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let run = shift(
        &split,
        &url,
        &["--step", "10", "--interval", "30s", "--min-requests", "40"],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let outcomes = load.finish().await;
    let failed = failures(&outcomes);
    assert!(!run.ok, "{}", run.out);
    assert!(
        run.out.contains("rolled back: world-v2 at 0%"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("success"),
        "the reason is the success rate: {}",
        run.out
    );
    assert!(
        !run.out.contains("step 2/"),
        "rolled back during its first step: {}",
        run.out
    );
    assert_eq!(file_weights(&split), (100, 0));
    println!(
        "failing canary rolled back after {:?} (its first step lasts 30 s); {} requests at 200/s, {} failed for clients",
        run.took,
        outcomes.len(),
        failed.len()
    );
    assert!(run.took < Duration::from_secs(25), "{:?}", run.took);
    assert!(
        failed.is_empty(),
        "retries hide the canary's failures: {failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_too_little_traffic_the_shift_holds_and_never_promotes() {
    let split = Split::start(100, 0).await;
    let (_dash, url) = dashboard(&split).await;
    let load = Load::start(split.mesh.a.outbound, "world", "/echo", 0.2);
    let run = shift(
        &split,
        &url,
        &[
            "--step",
            "50",
            "--interval",
            "2s",
            "--min-requests",
            "40",
            "--hold-timeout",
            "8s",
        ],
    )
    .await;
    drop(load);
    assert!(!run.ok, "{}", run.out);
    assert!(run.out.contains("verdict: hold"), "{}", run.out);
    assert!(!run.out.contains("verdict: healthy"), "{}", run.out);
    assert!(!run.out.contains("promoted"), "{}", run.out);
    assert!(run.out.contains("too little traffic"), "{}", run.out);
    assert_eq!(file_weights(&split), (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kubernetes_the_shift_edits_the_httproute_weights() {
    use weft_tests::kube_objects as k8s;
    let mesh = weft_tests::kube_mesh::KubeMesh::start().await;
    let (v1, v2) = (Backend::start(NODE_B).await, Backend::start(NODE_B).await);
    for (svc, b, pod) in [("world-v1", &v1, "v1-0"), ("world-v2", &v2, "v2-0")] {
        mesh.kube
            .apply("services", k8s::service("default", svc, 80));
        mesh.add_instance_of(b, svc, "node-b", pod, "v1");
    }
    mesh.kube.apply(
        "httproutes",
        k8s::http_route(
            "default",
            "world-split",
            "world",
            &[("world-v1", 100), ("world-v2", 0)],
        ),
    );
    let (a, b) = (mesh.a.admin.to_string(), mesh.b.admin.to_string());
    let (_dash, addr) = weft_tests::demo::start_dashboard(&["--proxy", &a, "--proxy", &b]).await;
    // The route in force (world has no instance of its own) before the load starts.
    let a_out = mesh.a.outbound;
    answered_by(
        "world-v1 takes world's traffic",
        Duration::from_secs(20),
        a_out,
        v1.addr,
    )
    .await;
    let load = Load::start(mesh.a.outbound, "world", "/echo", 100.0);
    let kubeconfig = mesh.dir.path("kubeconfig");
    let kubeconfig = kubeconfig.to_str().unwrap();
    let dashboard = format!("http://{addr}");
    let run = run_weft(
        &[
            "shift",
            "world",
            "--to",
            "world-v2",
            "--kubeconfig",
            kubeconfig,
            "--dashboard",
            &dashboard,
            "--steps",
            "50",
            "--interval",
            "2s",
            "--judge-every",
            "1s",
            "--window",
            "10s",
            "--min-requests",
            "20",
            "--max-p99-ratio",
            "10",
        ],
        Duration::from_secs(120),
    )
    .await;
    let text = run.out;
    assert!(run.ok, "{text}");
    assert!(text.contains("HTTPRoute default/world-split"), "{text}");
    let route = mesh
        .kube
        .get("httproutes", "default", "world-split")
        .unwrap();
    let refs = &route["spec"]["rules"][0]["backendRefs"];
    assert_eq!(
        (refs[0]["weight"].as_u64(), refs[1]["weight"].as_u64()),
        (Some(0), Some(100))
    );
    answered_by(
        "world-v2 takes world's traffic",
        Duration::from_secs(20),
        a_out,
        v2.addr,
    )
    .await;
    let outcomes = load.finish().await;
    let failed = failures(&outcomes);
    assert!(failed.is_empty(), "{failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_changed_by_someone_else_stops_the_shift_and_stays() {
    let split = Split::start(100, 0).await;
    let (_dash, url) = dashboard(&split).await;
    let file = split.mesh.discovery.clone();
    // An operator's own edit, a second into the first step.
    let text = split.text(&split.split_rule(70, 30));
    let edit = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        weft_tests::discovery::write_raw(&file, &text);
    });
    // No traffic: the step holds, and at its hold timeout the shift would roll back.
    let run = shift(
        &split,
        &url,
        &["--step", "10", "--interval", "2s", "--hold-timeout", "3s"],
    )
    .await;
    edit.await.unwrap();
    assert!(!run.ok, "{}", run.out);
    assert!(run.out.contains("changed by someone else"), "{}", run.out);
    assert_eq!(
        file_weights(&split),
        (70, 30),
        "the operator's weights stay"
    );
}
