//! Fault injection on real processes: instances killed, failing, slow, replaced; retries
//! within budget; policy reloaded. Each test prints what it measured. Timeouts and
//! deadlines have their own file (`deadlines.rs`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use weft_tests::backend::{fnv, pattern, Backend};
use weft_tests::client::curl;
use weft_tests::discovery::Ep;
use weft_tests::load::{failures, Load, Outcome};
use weft_tests::mesh::{Mesh, NODE_B};
use weft_tests::proxy::{metric, WeftProxy};

fn share(outcomes: &[Outcome], backend: &Backend, from: Duration, to: Duration) -> f64 {
    let window: Vec<_> = outcomes
        .iter()
        .filter(|o| o.at >= from && o.at < to && o.status == 200)
        .collect();
    let mine = window
        .iter()
        .filter(|o| o.backend.as_deref() == Some(&backend.addr.to_string()))
        .count();
    mine as f64 / window.len().max(1) as f64
}

/// A mesh whose outbound side never ejects an instance of `world`, so a failing one keeps
/// taking requests.
async fn mesh_without_accrual() -> Mesh {
    Mesh::with_config("[services.world.failure_accrual]\nconsecutive_failures = 0\n").await
}

async fn endpoint_state(proxy: &WeftProxy, addr: std::net::SocketAddr) -> String {
    let (_, body) = proxy.admin_get("/endpoints").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["services"]["world"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["addr"] == addr.to_string())
        .map(|e| e["state"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_instance_under_load_is_invisible_to_clients() {
    let mesh = Mesh::start().await;
    let mut backends = mesh.worlds(3).await;
    let load = Load::start(mesh.a.outbound, "world", "/echo", 100.0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = load.started.elapsed();
    drop(backends.remove(0));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let outcomes = load.finish().await;
    let failed = failures(&outcomes);
    let last = failed.iter().map(|o| o.at).max();
    println!(
        "kill: {} requests, {} failed ({:.3} %), last failure {:?} after the kill",
        outcomes.len(),
        failed.len(),
        100.0 * failed.len() as f64 / outcomes.len() as f64,
        last.map(|l| l.saturating_sub(killed_at))
    );
    assert!(outcomes.len() >= 350);
    assert!(
        (failed.len() as f64) < 0.001 * outcomes.len() as f64,
        "{failed:?}"
    );
    if let Some(l) = last {
        assert!(
            l < killed_at + Duration::from_secs(1),
            "failures went on until {l:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_instance_is_ejected_then_probed_and_readmitted() {
    let mesh = Mesh::start().await;
    let backends = mesh.worlds(3).await;
    let bad = &backends[0];
    bad.set_failing(true);
    let load = Load::start(mesh.a.outbound, "world", "/echo", 50.0);
    weft_tests::eventually(
        "the failing instance ejected",
        Duration::from_secs(5),
        || async { (endpoint_state(&mesh.a, bad.addr).await == "open").then_some(()) },
    )
    .await;
    let route = format!(
        "direction=\"outbound\",service=\"world\",endpoint=\"{}\"",
        bad.addr
    );
    let m = mesh.a.metrics().await;
    let failed_before = metric(
        &m,
        &format!("weft_attempts_total{{{route},classification=\"failure\"}}"),
    )
    .unwrap_or(0.0);
    println!("ejected after {failed_before} failed attempts");
    assert!(
        failed_before <= 7.0 + 3.0,
        "ejected only after {failed_before} failures"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    // It recovers: a probe finds it healthy and it takes traffic again.
    bad.set_failing(false);
    let recovered = Instant::now();
    let before = bad.count();
    weft_tests::eventually(
        "the instance readmitted",
        // Probes failed while it was broken, so the next may be up to 8 s (jittered) away.
        Duration::from_secs(30),
        || async {
            (endpoint_state(&mesh.a, bad.addr).await == "ready" && bad.count() > before + 5)
                .then_some(())
        },
    )
    .await;
    println!("readmitted {:?} after recovery", recovered.elapsed());
    let outcomes = load.finish().await;
    let failed = failures(&outcomes).len();
    let success = 1.0 - failed as f64 / outcomes.len() as f64;
    println!(
        "clients saw {:.2} % success over {} requests",
        success * 100.0,
        outcomes.len()
    );
    assert!(success >= 0.995, "{failed} of {} failed", outcomes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_instance_loses_its_share_and_regains_it() {
    let mesh = Mesh::start().await;
    let backends = mesh.worlds(3).await;
    let slow = &backends[0];
    let load = Load::start(mesh.a.outbound, "world", "/echo", 50.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let slowed = load.started.elapsed();
    slow.set_latency(50);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let healed = load.started.elapsed();
    slow.set_latency(0);
    // Peak-EWMA forgets the peak with a 10 s decay: give it time to be tried again.
    let mut regained = None;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = load.started.elapsed();
        let s = share(
            &load.snapshot(),
            slow,
            now.saturating_sub(Duration::from_secs(5)),
            now,
        );
        if s > 0.2 {
            regained = Some(now - healed);
            break;
        }
    }
    let outcomes = load.finish().await;
    let before = share(&outcomes, slow, Duration::ZERO, slowed);
    let during = share(&outcomes, slow, slowed + Duration::from_secs(1), healed);
    println!("slow instance share: before {:.1} %, while slow {:.1} %, regained >20 % after {regained:?}", before * 100.0, during * 100.0);
    assert!(during < 0.10, "slow instance kept {:.1} %", during * 100.0);
    assert!(
        regained.is_some(),
        "the healed instance never regained its share"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stay_within_budget_when_all_endpoints_fail() {
    // Failure accrual off, so every request really reaches a failing instance.
    let mesh = mesh_without_accrual().await;
    let backends = mesh.worlds(3).await;
    for b in &backends {
        b.set_failing(true);
    }
    let load = Load::start(mesh.a.outbound, "world", "/echo", 50.0);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let seconds = load.started.elapsed().as_secs_f64();
    let outcomes = load.finish().await;
    let m = mesh.a.metrics().await;
    let requests = outcomes.len() as f64;
    let attempts: usize = backends.iter().map(Backend::count).sum();
    let retries = metric(
        &m,
        "weft_retries_total{direction=\"outbound\",service=\"world\"}",
    )
    .unwrap_or(0.0);
    let exhausted = metric(
        &m,
        "weft_retry_budget_exhausted_total{direction=\"outbound\",service=\"world\"}",
    )
    .unwrap_or(0.0);
    // 20 % of requests plus 10 per second; the budget counts in whole seconds, so the run
    // may touch one second more than it lasted.
    let allowed = 0.2 * requests + 10.0 * (seconds + 1.0);
    println!("{requests} requests, {attempts} attempts, {retries} retries (allowed {allowed}), {exhausted} refused by the budget");
    assert!(
        attempts as f64 - requests <= allowed,
        "{attempts} attempts for {requests} requests"
    );
    assert!(retries <= allowed);
    assert!(exhausted > 0.0);
    // Nothing piles up: every request was answered promptly, and nothing is outstanding.
    let slowest = outcomes.iter().map(|o| o.latency).max().unwrap();
    assert!(
        slowest < Duration::from_secs(1),
        "slowest answer {slowest:?}"
    );
    let (_, eps) = mesh.a.admin_get("/endpoints").await;
    let eps: serde_json::Value = serde_json::from_str(&eps).unwrap();
    for e in eps["services"]["world"]["endpoints"].as_array().unwrap() {
        assert_eq!(e["outstanding"], 0, "{e}");
    }
}

/// Only weft speaks `weft-error`: an app's response carrying one that means "never
/// delivered" is the app's answer, not a reason to send its POST again. Each proxy removes
/// the header from what an app answers, whether the app is behind a peer proxy or reached
/// straight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_forged_weft_error_is_its_answer_and_never_retried() {
    let mesh = mesh_without_accrual().await;
    let behind_b = Backend::start(NODE_B).await;
    let direct = Backend::start(NODE_B).await;
    mesh.publish(&[
        ("world", vec![mesh.on_b(behind_b.addr)]),
        ("local", vec![Ep::direct(direct.addr)]),
    ])
    .await;
    for (service, app) in [("world", &behind_b), ("local", &direct)] {
        let rsp = post(&mesh, &format!("http://{service}/forged-weft-error")).await;
        assert_eq!(rsp.status, 403, "{service}: {}", rsp.text());
        assert_eq!(
            rsp.header("weft-error"),
            None,
            "{service}: {:?}",
            rsp.headers
        );
        assert_eq!(app.count(), 1, "{service}: the POST was sent again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_sends_its_body_again_whole() {
    // Accrual off, so the failing instance stays in rotation and keeps causing retries.
    let mesh = mesh_without_accrual().await;
    let backends = mesh.worlds(2).await;
    backends[0].set_failing(true);
    let upload = pattern(5000);
    let file = mesh.dir.path("upload.bin");
    std::fs::write(&file, &upload).unwrap();
    let data = format!("@{}", file.display());
    let proxy = mesh.proxy_flag();
    for i in 0..20 {
        let rsp = curl(&[
            "-x",
            &proxy,
            "-X",
            "PUT",
            "--data-binary",
            &data,
            "http://world/echo",
        ])
        .await;
        assert_eq!(rsp.status, 200, "request {i}: {:?}", rsp.body);
        let echo: serde_json::Value = serde_json::from_slice(&rsp.body).unwrap();
        assert_eq!(echo["body_len"], upload.len(), "request {i}");
        assert_eq!(echo["body_hash"], fnv(&upload), "request {i}");
    }
    let failed = backends[0].count();
    let retries = metric(
        &mesh.a.metrics().await,
        "weft_retries_total{direction=\"outbound\",service=\"world\"}",
    )
    .unwrap_or(0.0);
    println!("20 PUTs with a 5000-byte body: {failed} went to the failing instance first, {retries} retries");
    // Each visit to the failing instance was retried on the other, with the whole body.
    assert!(failed > 0, "no request met the failing instance");
    assert_eq!(retries, failed as f64);
    assert_eq!(backends[1].count(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_every_instance_under_load_fails_no_request() {
    let mesh = Mesh::start().await;
    let mut current = mesh.worlds(3).await;
    let load = Load::start(mesh.a.outbound, "world", "/echo", 50.0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..3 {
        let fresh = Backend::start(NODE_B).await;
        let mut eps: Vec<Ep> = current.iter().map(|b| mesh.on_b(b.addr)).collect();
        eps[i] = mesh.on_b(fresh.addr);
        mesh.publish(&[("world", eps)]).await;
        let old = std::mem::replace(&mut current[i], fresh);
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(old);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let outcomes = load.finish().await;
    let failed = failures(&outcomes);
    let served: HashMap<_, usize> =
        outcomes
            .iter()
            .filter_map(|o| o.backend.clone())
            .fold(HashMap::new(), |mut m, b| {
                *m.entry(b).or_default() += 1;
                m
            });
    println!(
        "replaced 3 instances under load: {} requests, {} failed, served by {} instances",
        outcomes.len(),
        failed.len(),
        served.len()
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(served.len(), 6, "old and new instances all served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_endpoint_is_ejected_the_proxy_fails_fast_with_circuit_open() {
    let mesh = Mesh::start().await;
    let backends = mesh.worlds(2).await;
    for b in &backends {
        b.set_failing(true);
    }
    let proxy = mesh.proxy_flag();
    let rsp = weft_tests::eventually(
        "every endpoint ejected",
        Duration::from_secs(10),
        || async {
            let rsp = weft_tests::client::curl(&["-x", &proxy, "http://world/echo"]).await;
            (rsp.header("weft-error") == Some("circuit open")).then_some(rsp)
        },
    )
    .await;
    assert_eq!(rsp.status, 503);
    // Failing fast: no instance is asked while the circuit is open.
    let asked: usize = backends.iter().map(Backend::count).sum();
    let start = Instant::now();
    let rsp = weft_tests::client::curl(&["-x", &proxy, "http://world/echo"]).await;
    assert_eq!(rsp.header("weft-error"), Some("circuit open"));
    assert!(start.elapsed() < Duration::from_millis(500));
    assert_eq!(backends.iter().map(Backend::count).sum::<usize>(), asked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_edits_apply_without_a_restart_and_bad_edits_keep_the_running_policy() {
    let mesh = Mesh::with_config("[services.world.timeout]\ntotal = \"5s\"\n").await;
    let cfg = mesh.config_file();
    let proxy = mesh.proxy_flag();
    let rsp = weft_tests::client::curl(&["-x", &proxy, "http://world/slow?ms=400"]).await;
    assert_eq!(rsp.status, 200);

    // Tighten the timeout in the file: it applies to the next request.
    weft_tests::discovery::write_raw(&cfg, "[services.world.timeout]\ntotal = \"150ms\"\n");
    weft_tests::eventually(
        "the new timeout in /config",
        Duration::from_secs(5),
        || async {
            let (_, c) = mesh.a.admin_get("/config").await;
            let c: serde_json::Value = serde_json::from_str(&c).ok()?;
            (c["policies"]["services"]["world"]["timeout"]["total"] == "150ms").then_some(())
        },
    )
    .await;
    let rsp = weft_tests::client::curl(&["-x", &proxy, "http://world/slow?ms=400"]).await;
    assert_eq!(rsp.status, 504);
    // The peer's inbound side holds the same (propagated) deadline; whichever proxy's timer
    // fires first names it.
    let error = rsp.header("weft-error");
    assert!(
        matches!(error, Some("timeout" | "deadline exceeded")),
        "{error:?}"
    );

    // A broken edit is refused, counted and logged with its line; the policy stays.
    weft_tests::discovery::write_raw(
        &cfg,
        "[services.world.timeout]\ntotal = \"150ms\"\nbogus = 1\n",
    );
    weft_tests::eventually("the bad edit counted", Duration::from_secs(5), || async {
        (mesh.a.sample("weft_config_errors_total").await == Some(1.0)).then_some(())
    })
    .await;
    assert!(mesh.a.log().contains("proxy.toml:3:"), "{}", mesh.a.log());
    let rsp = weft_tests::client::curl(&["-x", &proxy, "http://world/slow?ms=400"]).await;
    assert_eq!(rsp.status, 504, "the running policy stays");
}

/// An instance that turns a request away unprocessed — HTTP/2's REFUSED_STREAM, or a stream
/// past its GOAWAY, as a draining server does — has not seen it: the proxy sends it again,
/// a POST too, and the client gets the answer of the instance that took it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_refused_unprocessed_is_sent_again() {
    let mesh = Mesh::start().await;
    for mode in ["refuse", "goaway"] {
        let (_server, port) = weft_tests::python::serve("h2_refuser.py", &[mode, "1"]).await;
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        mesh.publish(&[
            ("world", vec![mesh.on_b(mesh.world.addr)]),
            ("drainer", vec![Ep::direct(addr).h2()]),
        ])
        .await;
        let rsp = post(&mesh, "http://drainer/orders").await;
        assert_eq!(rsp.status, 200, "{mode}: {:?} {}", rsp.headers, rsp.text());
        assert_eq!(rsp.text(), "served 2\n", "{mode}");
    }
}

/// A POST (never safe to send twice unless it never arrived) through node A's proxy.
async fn post(mesh: &Mesh, url: &str) -> weft_tests::client::Reply {
    curl(&[
        "-x",
        &mesh.proxy_flag(),
        "-X",
        "POST",
        "--data",
        "order=1",
        url,
    ])
    .await
}
