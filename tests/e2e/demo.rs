//! `weft demo` end to end: the `curl -x` answer, and numbers on the dashboard's API and in
//! `weft stat` that match what the test itself sent and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use weft_tests::client::{curl, send_h1};
use weft_tests::demo::{row, Demo};
use weft_tests::proxy::weft_bin;

/// The test's own traffic: `rps` requests a second to hello, spread over the nodes.
struct Load {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn load(demo: &Demo, rps: f64) -> Load {
    let proxies: Vec<_> = demo.nodes.iter().map(|n| n.outbound).collect();
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let (o, f) = (ok.clone(), failed.clone());
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rps));
        let mut inflight = Vec::new();
        for n in 0.. {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
            let proxy = proxies[n % proxies.len()];
            let (o, f) = (o.clone(), f.clone());
            inflight.push(tokio::spawn(async move {
                let req = http::Request::get("http://hello/")
                    .header("host", "hello")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                match send_h1(proxy, req).await {
                    Ok(r) if r.status == 200 => o.fetch_add(1, Ordering::SeqCst),
                    _ => f.fetch_add(1, Ordering::SeqCst),
                };
            }));
        }
        for t in inflight {
            let _ = t.await;
        }
    });
    Load {
        ok,
        failed,
        stop,
        task,
    }
}

async fn stat_json(demo: &Demo, by: &str) -> serde_json::Value {
    let out = tokio::process::Command::new(weft_bin())
        .args(["stat", "--window", "1m", "-o", "json", "--by", by])
        .args(["--dashboard", &format!("http://{}", demo.dashboard)])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_numbers_match_what_the_test_counted() {
    let demo = Demo::start(
        10,
        &[
            "--rps",
            "0",
            "--world-failure-rate",
            "0.1",
            "--world-latency",
            "node-2=50ms",
            "--scrape-interval",
            "1s",
        ],
    )
    .await;
    assert_eq!(demo.nodes.len(), 3, "{}", demo.banner);

    // The banner's curl command answers as the walk-through promises (world fails 10 %).
    let answer = weft_tests::eventually("a Hello answer", Duration::from_secs(10), || async {
        let rsp = curl(&["-x", &demo.curl_proxy, "http://hello/"]).await;
        (rsp.status == 200).then(|| rsp.text())
    })
    .await;
    let shape = answer.trim().starts_with("Hello (127.0.10.")
        && answer.contains(") world (127.0.10.")
        && answer.trim().ends_with(")!!");
    assert!(shape, "{answer:?}");
    // And so does its tunnel command: the way gRPC and HTTPS clients behind http_proxy come.
    assert!(demo
        .banner
        .contains(&format!("curl -p -x {} http://hello/", demo.curl_proxy)));
    let tunnelled = weft_tests::eventually(
        "a Hello through a tunnel",
        Duration::from_secs(10),
        || async {
            let rsp = curl(&["-p", "-x", &demo.curl_proxy, "http://hello/"]).await;
            (rsp.status == 200).then(|| rsp.text())
        },
    )
    .await;
    assert!(
        tunnelled.trim().starts_with("Hello (127.0.10."),
        "{tunnelled:?}"
    );
    // And its gRPC command, run as printed: a Greet call to world through a tunnel.
    let greet: Vec<String> = demo
        .banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("weft greet "))
        .and_then(|l| l.split('#').next())
        .unwrap_or_else(|| panic!("no greet command in {}", demo.banner))
        .split_whitespace()
        .map(String::from)
        .collect();
    let greeted = weft_tests::eventually("a gRPC greeting", Duration::from_secs(10), || {
        let greet = greet.clone();
        async move {
            let out = tokio::process::Command::new(weft_bin())
                .arg("greet")
                .args(&greet)
                .output()
                .await
                .unwrap();
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        }
    })
    .await;
    assert!(
        greeted.trim().starts_with("world (127.0.10."),
        "{greeted:?}"
    );

    let rps = 40.0;
    let traffic = load(&demo, rps);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(63)).await;
    let services = demo.api("/api/services?window=60").await;
    let instances = demo.api("/api/instances?window=60").await;
    let stat = stat_json(&demo, "service").await;
    let stat_inst = stat_json(&demo, "instance").await;
    traffic.stop.send_replace(true);
    traffic.task.await.unwrap();
    let (ok, failed) = (
        traffic.ok.load(Ordering::SeqCst),
        traffic.failed.load(Ordering::SeqCst),
    );
    let own_rate = ok as f64 / (ok + failed) as f64;
    let sent_rps = (ok + failed) as f64 / started.elapsed().as_secs_f64();

    let world = &row(&services["services"], "service", "world")["stats"];
    let hello = &row(&services["services"], "service", "hello")["stats"];
    let world_sr = world["success_rate"].as_f64().unwrap();
    let hello_sr = hello["success_rate"].as_f64().unwrap();
    let hello_rps = hello["rps"].as_f64().unwrap();
    let world_rps = world["rps"].as_f64().unwrap();
    println!(
        "sent {} ({sent_rps:.1}/s), own success {:.2}%; dashboard: world {:.2}% at {world_rps:.1} rps, hello {:.2}% at {hello_rps:.1} rps",
        ok + failed,
        own_rate * 100.0,
        world_sr * 100.0,
        hello_sr * 100.0
    );
    assert!((world_sr - 0.9).abs() <= 0.02, "world success {world_sr}");
    assert!(
        (hello_sr - own_rate).abs() <= 0.02,
        "hello {hello_sr} vs counted {own_rate}"
    );
    assert!(
        (hello_rps - rps).abs() <= rps * 0.1,
        "hello rps {hello_rps}"
    );
    assert!(
        (world_rps - rps).abs() <= rps * 0.1,
        "world rps {world_rps}"
    );

    // weft stat says the same (read a scrape or so later, so allow that much drift).
    let stat_world = row(&stat, "name", "world");
    let stat_sr = stat_world["success_rate"].as_f64().unwrap();
    assert!(
        (stat_sr - world_sr).abs() < 0.01,
        "{stat_world} vs {world_sr}"
    );
    assert!((stat_world["rps"].as_f64().unwrap() - world_rps).abs() < rps * 0.05);

    // The slow world instance (node 2) reads 50 ms at p95; the others do not.
    let slow = demo.nodes[1]
        .apps
        .iter()
        .find(|(a, _)| a == "world")
        .unwrap()
        .1
        .to_string();
    for ep in instances["endpoints"].as_array().unwrap() {
        if ep["service"] != "world" {
            continue;
        }
        let p95 = ep["stats"]["p95_ms"].as_f64().unwrap();
        println!("world {} p95 {p95:.1} ms", ep["endpoint"]);
        if ep["endpoint"] == slow.as_str() {
            assert!((42.5..=57.5).contains(&p95), "slow instance p95 {p95}");
            assert_eq!(ep["node"], "node-2");
        } else {
            assert!(p95 < 42.5, "fast instance {} p95 {p95}", ep["endpoint"]);
        }
        let in_stat = row(&stat_inst, "name", ep["endpoint"].as_str().unwrap());
        let stat_p95 = in_stat["latency_p95_ms"].as_f64().unwrap();
        assert!(
            (stat_p95 - p95).abs() <= p95 * 0.1 + 0.5,
            "stat {stat_p95} vs API {p95}"
        );
    }
    let status = demo.stop().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn demo_names_a_busy_port_and_stops_cleanly() {
    let busy = std::net::TcpListener::bind("127.0.13.3:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = tokio::process::Command::new(weft_bin())
        .args(["demo", "--node-ips", "127.0.13.2,127.0.13.3,127.0.13.4"])
        .args([
            "--outbound-port",
            &port,
            "--inbound-port",
            "0",
            "--admin-port",
            "0",
        ])
        .args([
            "--hello-port",
            "0",
            "--world-port",
            "0",
            "--ingress-port",
            "0",
            "--dashboard",
            "127.0.0.1:0",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("weft:"))
        .unwrap_or_default();
    assert!(line.contains(&format!("127.0.13.3:{port}")), "{err}");
    drop(busy);

    let demo = Demo::start(14, &["--rps", "5"]).await;
    let admin = demo.nodes[0].admin;
    let dashboard = demo.dashboard;
    let status = demo.stop().await;
    assert!(status.success(), "{status:?}");
    for addr in [admin, dashboard] {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{addr} still open"
        );
    }
}
