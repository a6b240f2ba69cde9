//! Fault injection on real processes: instances killed, failing, slow, replaced; retries
//! within budget; deadlines enforced across three hops. Each test prints what it measured.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use weft_tests::backend::{fnv, pattern, Backend};
use weft_tests::client::curl;
use weft_tests::discovery::Ep;
use weft_tests::load::{failures, Load, Outcome};
use weft_tests::mesh::{Mesh, NODE_A, NODE_B};
use weft_tests::proxy::{metric, weft_bin, WeftProxy};
use weft_tests::TempDir;

async fn worlds(mesh: &Mesh, n: usize) -> Vec<Backend> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(Backend::start(NODE_B).await);
    }
    let eps = v.iter().map(|b| mesh.on_b(b.addr)).collect();
    mesh.publish(&[("world", eps)]).await;
    v
}

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

/// A mesh whose proxies read `config`. The folder holds it as `proxy.toml`; keep it as long
/// as the mesh.
async fn mesh_with_config(name: &str, config: &str) -> (TempDir, Mesh) {
    let dir = TempDir::new(name);
    let cfg = dir.path("proxy.toml");
    std::fs::write(&cfg, config).unwrap();
    let mesh = Mesh::start_with(&["--config", cfg.to_str().unwrap()]).await;
    (dir, mesh)
}

/// A mesh whose outbound side never ejects an instance of `world`, so a failing one keeps
/// taking requests.
async fn mesh_without_accrual(name: &str) -> (TempDir, Mesh) {
    let config = "[services.world.failure_accrual]\nconsecutive_failures = 0\n";
    mesh_with_config(name, config).await
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
    let mut backends = worlds(&mesh, 3).await;
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
    let backends = worlds(&mesh, 3).await;
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
    let backends = worlds(&mesh, 3).await;
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
    let (_dir, mesh) = mesh_without_accrual("budget").await;
    let backends = worlds(&mesh, 3).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_sends_its_body_again_whole() {
    // Accrual off, so the failing instance stays in rotation and keeps causing retries.
    let (dir, mesh) = mesh_without_accrual("replay").await;
    let backends = worlds(&mesh, 2).await;
    backends[0].set_failing(true);
    let upload = pattern(5000);
    let file = dir.path("upload.bin");
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

/// `weft hello-world` relaying to `target` through `proxy`; returns the process and address.
async fn relay(
    ip: &str,
    target: &str,
    proxy: std::net::SocketAddr,
) -> (tokio::process::Child, std::net::SocketAddr) {
    let mut child = tokio::process::Command::new(weft_bin())
        .args([
            "hello-world",
            "--addr",
            &format!("{ip}:0"),
            "--text",
            target,
            "--target",
            target,
        ])
        .args(["--proxy", &proxy.to_string()])
        .env("WEFT_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_attempt_gives_way_to_another_instance_at_the_per_attempt_timeout() {
    let config = "[services.world.timeout]\nper_attempt = \"200ms\"\n";
    let (_dir, mesh) = mesh_with_config("per-attempt", config).await;
    let backends = worlds(&mesh, 2).await;
    backends[0].set_latency(10_000);
    // At once, so the balancer's load term spreads them over both instances before either
    // has a latency estimate: some first attempts go to the stalled one.
    let proxy = mesh.proxy_flag();
    let requests = (0..10).map(|_| {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let rsp = curl(&["-x", &proxy, "http://world/echo"]).await;
            (rsp, started.elapsed())
        })
    });
    let mut slowest = Duration::ZERO;
    for request in futures_util::future::join_all(requests).await {
        let (rsp, took) = request.unwrap();
        assert_eq!(rsp.status, 200, "{}", rsp.text());
        slowest = slowest.max(took);
    }
    println!("10 requests, one of two instances stalled: all 200, slowest {slowest:?}");
    assert!(slowest < Duration::from_secs(3), "{slowest:?}");
    weft_tests::eventually(
        "the stalled instance sees a timed-out attempt cancelled",
        Duration::from_secs(5),
        || async {
            (backends[0]
                .cancelled
                .load(std::sync::atomic::Ordering::SeqCst)
                >= 1)
                .then_some(())
        },
    )
    .await;
    // With both stalled, every attempt runs out, retries too: a 504 that says which timeout.
    backends[1].set_latency(10_000);
    let started = Instant::now();
    let rsp = curl(&["-x", &proxy, "http://world/echo"]).await;
    println!("both stalled: {} after {:?}", rsp.status, started.elapsed());
    assert_eq!(rsp.status, 504, "{}", rsp.text());
    assert_eq!(rsp.header("weft-error"), Some("attempt timeout"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_binds_a_three_hop_chain_and_cancels_the_stalled_hop() {
    let dir = TempDir::new("deadline");
    let cfg = dir.path("proxy.toml");
    std::fs::write(&cfg, "[services.front.timeout]\ntotal = \"100ms\"\n").unwrap();
    let disc = dir.path("discovery.toml");
    weft_tests::discovery::write_raw(&disc, "");
    let extra = ["--config", cfg.to_str().unwrap()];
    let a = WeftProxy::start_with(NODE_A, &disc, &extra).await;
    let b = WeftProxy::start_with(NODE_B, &disc, &extra).await;
    let c = WeftProxy::start_with("127.0.0.4", &disc, &extra).await;
    // front (node B) → mid (node C) → back (node A), which stalls.
    let (_front, front) = relay(NODE_B, "mid", b.outbound).await;
    let (_mid, mid) = relay("127.0.0.4", "back", c.outbound).await;
    let back = Backend::start(NODE_A).await;
    back.set_latency(10_000);
    let services = [
        ("front", vec![Ep::on(front, b.inbound)]),
        ("mid", vec![Ep::on(mid, c.inbound)]),
        ("back", vec![Ep::on(back.addr, a.inbound)]),
    ];
    weft_tests::discovery::write(&disc, &services);
    for p in [&a, &b, &c] {
        for (name, eps) in &services {
            p.wait_for(name, eps, true).await;
        }
    }
    // Connected first, so the clock measures the request, not the client starting up.
    let io =
        hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(a.outbound).await.unwrap());
    let (mut tx, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("http://front/")
        .header("host", "front")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let start = Instant::now();
    let rsp = weft_tests::client::collect(tx.send_request(req).await.unwrap())
        .await
        .unwrap();
    let took = start.elapsed();
    println!(
        "three hops, stalled last: {} after {took:?} ({:?})",
        rsp.status,
        rsp.header("weft-error")
    );
    assert_eq!(rsp.status, 504, "{}", rsp.text());
    assert!(
        took >= Duration::from_millis(80) && took <= Duration::from_millis(120),
        "{took:?}"
    );
    weft_tests::eventually(
        "the stalled hop sees its request cancelled",
        Duration::from_secs(2),
        || async { (back.cancelled.load(std::sync::atomic::Ordering::SeqCst) >= 1).then_some(()) },
    )
    .await;
    // The deadline travelled every hop: with the stall lifted, the last instance's echo of
    // its request shows the header the first proxy set, carried on by both apps.
    back.set_latency(0);
    let unix_micros = || {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        since.unwrap().as_micros() as u64
    };
    let sent = unix_micros();
    let rsp = weft_tests::client::curl(&["-x", &a.outbound.to_string(), "http://front/"]).await;
    let answered = unix_micros();
    let text = rsp.text();
    assert_eq!(rsp.status, 200, "{text}");
    // Each app sees the first proxy's 100 ms as a time (Unix microseconds), never the time
    // left that crosses each hop between proxies; every such hop may round off a millisecond.
    assert!(!text.contains("weft-ctx-timeout"), "{text}");
    let seen: u64 = text
        .split("\"weft-ctx-deadline\":[\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no deadline in {text}"));
    println!("deadline seen by the last instance: {seen} (request sent at {sent})");
    assert!(
        seen >= sent + 95_000 && seen <= answered + 100_000,
        "{seen} not within 100 ms of {sent}..{answered}"
    );
    back.set_latency(10_000);
    // A request whose deadline already passed is refused at once, without being sent.
    let before = back.count();
    let rsp = weft_tests::client::curl(&[
        "-x",
        &a.outbound.to_string(),
        "-H",
        "weft-ctx-deadline: 1000",
        "http://back/",
    ])
    .await;
    assert_eq!(rsp.status, 504);
    assert_eq!(rsp.header("weft-error"), Some("deadline exceeded"));
    assert_eq!(back.count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_every_instance_under_load_fails_no_request() {
    let mesh = Mesh::start().await;
    let mut current = worlds(&mesh, 3).await;
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
    let backends = worlds(&mesh, 2).await;
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
    let (dir, mesh) =
        mesh_with_config("reload", "[services.world.timeout]\ntotal = \"5s\"\n").await;
    let cfg = dir.path("proxy.toml");
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
