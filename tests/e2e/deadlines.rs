//! Timeouts and deadlines on real processes: a stalled attempt gives way at the per-attempt
//! timeout, and a caller's deadline binds a chain of three hops. Each test prints what it
//! measured.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use weft_tests::backend::Backend;
use weft_tests::client::curl;
use weft_tests::discovery::Ep;
use weft_tests::mesh::{Mesh, NODE_A, NODE_B};
use weft_tests::proxy::{weft_bin, WeftProxy};
use weft_tests::TempDir;

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
    let mesh = Mesh::with_config(config).await;
    let backends = mesh.worlds(2).await;
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
    // Every hop holds the same deadline, each rounded down to the millisecond: node A's
    // own 504 usually comes first, but on a loaded machine the innermost hop's 504 can
    // climb the chain (as the relays' 503) a moment sooner. Either way the deadline bound.
    let bound_inside = rsp.status == 503 && rsp.text().contains("the caller's deadline passed");
    assert!(
        rsp.status == 504 || bound_inside,
        "{} {}",
        rsp.status,
        rsp.text()
    );
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
