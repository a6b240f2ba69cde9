//! Limits and hostile input: a control plane that caps its Destination streams, and a proxy
//! that answers HTTP/2 abuse by closing the abuser's connection while everyone else is
//! served.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use weft_tests::client::curl;
use weft_tests::control::WeftControl;
use weft_tests::mesh::Mesh;
use weft_tests::proxy::metric;
use weft_tests::TempDir;

/// A Destination `Get` for `web`, as a gRPC frame.
const GET_WEB: &[u8] = b"\0\0\0\0\x05\x0a\x03web";

/// A Destination stream held open by curl (h2c), its response head printed to stdout.
fn destination_stream(control: std::net::SocketAddr, frame: &std::path::Path, secs: u32) -> Child {
    Command::new("curl")
        .args(["-sS", "-i", "-N", "--http2-prior-knowledge", "--max-time"])
        .arg(secs.to_string())
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg("--data-binary")
        .arg(format!("@{}", frame.display()))
        .arg(format!(
            "http://{control}/weft.destination.v1.Destination/Get"
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("curl")
}

/// Each Destination stream holds a task and a subscription: past `--max-streams` a new one
/// is refused at once with RESOURCE_EXHAUSTED and counted, and a closed one frees its place.
#[tokio::test]
async fn the_control_plane_refuses_streams_past_its_cap() {
    let tmp = TempDir::new("max-streams");
    let disc = tmp.path("discovery.toml");
    weft_tests::discovery::write(&disc, &[]);
    let frame = tmp.path("get-web.grpc");
    std::fs::write(&frame, GET_WEB).unwrap();
    let control = WeftControl::start_with(
        "127.0.0.1",
        &[
            "--discovery-file".as_ref(),
            disc.as_os_str(),
            "--max-streams".as_ref(),
            "3".as_ref(),
        ],
    )
    .await;
    let open_streams = || async {
        let text = control.admin_get("/metrics").await.1;
        metric(&text, "weft_control_destination_streams").unwrap_or(-1.0)
    };
    let mut held: Vec<Child> = (0..3)
        .map(|_| destination_stream(control.destination, &frame, 60))
        .collect();
    weft_tests::eventually("three streams open", Duration::from_secs(10), || async {
        (open_streams().await == 3.0).then_some(())
    })
    .await;
    let refused = destination_stream(control.destination, &frame, 10)
        .wait_with_output()
        .await
        .unwrap();
    let head = String::from_utf8_lossy(&refused.stdout).to_lowercase();
    assert!(head.contains("grpc-status: 8"), "{head}");
    assert!(head.contains("max-streams"), "{head}");
    let text = control.admin_get("/metrics").await.1;
    assert_eq!(
        metric(&text, "weft_control_destination_streams_refused_total"),
        Some(1.0),
        "{text}"
    );
    // One closed, and its place is taken again.
    held.pop().unwrap().kill().await.unwrap();
    weft_tests::eventually("a stream closed", Duration::from_secs(10), || async {
        (open_streams().await == 2.0).then_some(())
    })
    .await;
    held.push(destination_stream(control.destination, &frame, 60));
    weft_tests::eventually(
        "three streams open again",
        Duration::from_secs(10),
        || async { (open_streams().await == 3.0).then_some(()) },
    )
    .await;
}

/// Runs the hostile client against `addr`; its report.
async fn abuse(addr: std::net::SocketAddr, mode: &str, n: u32) -> serde_json::Value {
    let out = weft_tests::python::run(
        "h2_abuse.py",
        &[&addr.to_string(), "world", mode, &n.to_string()],
    )
    .await;
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

const ENHANCE_YOUR_CALM: u64 = 0xb;

/// Rapid reset (CVE-2023-44487): a client that opens streams and resets them, before the
/// proxy takes them (h2 counts those) or after it has sent them upstream (the proxy counts
/// those), has its connection closed with ENHANCE_YOUR_CALM long before 1 000 streams, and
/// the upstream work it caused stays bounded; other clients are served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_closes_the_abusers_connection_and_bounds_upstream_work() {
    let mesh = Mesh::start().await;
    let out = mesh.a.outbound;
    for mode in ["rapid_reset", "late_reset"] {
        let before = mesh.world.count();
        let report = abuse(out, mode, 5000).await;
        println!(
            "{mode}: {report}, upstream requests {}",
            mesh.world.count() - before
        );
        // Closed, with ENHANCE_YOUR_CALM when the GOAWAY gets there before the close (a
        // socket closed with the abuser's frames unread may be reset, and take it along).
        assert_eq!(report["closed"], true, "{mode}: {report}");
        assert!(
            report["goaway"].is_null() || report["goaway"] == ENHANCE_YOUR_CALM,
            "{mode}: {report}"
        );
        assert!(report["sent"].as_u64().unwrap() < 1000, "{mode}: {report}");
        assert!(
            mesh.world.count() - before < 1000,
            "{mode}: upstream work unbounded"
        );
        let rsp = curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
        assert_eq!(rsp.status, 200, "{mode}: {}", rsp.text());
    }
    // Each abuser's connection counted once: by weft (`rapid_reset`, the late resets always;
    // the quick ones too when the proxy took them first) or by h2 (`calm`).
    let metrics = mesh.a.metrics().await;
    let closed = |reason: &str| {
        metric(
            &metrics,
            &format!("weft_http2_abuse_closed_connections_total{{direction=\"outbound\",reason=\"{reason}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert!(closed("rapid_reset") >= 1.0, "{metrics}");
    assert_eq!(closed("rapid_reset") + closed("calm"), 2.0, "{metrics}");
}

/// A header block that never ends (CONTINUATION flood) and a flow-control window pushed past
/// its maximum each end in the connection closed, while other clients are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_floods_and_window_overflows_close_the_connection() {
    let mesh = Mesh::start().await;
    let out = mesh.a.outbound;
    let flood = abuse(out, "continuation", 10_000).await;
    println!("continuation: {flood}");
    assert!(
        flood["goaway"].is_u64() || flood["closed"] == true,
        "{flood}"
    );
    // 64 KiB of headers are taken; the flood is cut off within a few frames of that.
    assert!(flood["sent"].as_u64().unwrap() < 100, "{flood}");
    let overflow = abuse(out, "window_overflow", 0).await;
    println!("window overflow: {overflow}");
    const FLOW_CONTROL_ERROR: u64 = 0x3;
    assert_eq!(overflow["goaway"], FLOW_CONTROL_ERROR, "{overflow}");
    let rsp = curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    // Each counted, by why.
    let metrics = mesh.a.metrics().await;
    for reason in ["calm", "flow_control"] {
        let series = format!("weft_http2_abuse_closed_connections_total{{direction=\"outbound\",reason=\"{reason}\"}}");
        assert_eq!(metric(&metrics, &series), Some(1.0), "{series}\n{metrics}");
    }
}

/// One app's long calls to a peer no longer stall every other app's calls to it: with 210
/// calls held open to a slow instance on node B (more than one HTTP/2 connection carries),
/// a call from node A to another service on node B is answered at once, over a connection
/// of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_calls_to_one_peer_do_not_stall_other_calls_to_it() {
    use tokio::io::AsyncWriteExt;
    let mesh = Mesh::start().await;
    let slow = weft_tests::backend::Backend::start(weft_tests::mesh::NODE_B).await;
    mesh.publish(&[
        ("world", vec![mesh.on_b(mesh.world.addr)]),
        ("slow", vec![mesh.on_b(slow.addr)]),
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..210 {
        let mut c = tokio::net::TcpStream::connect(mesh.a.outbound)
            .await
            .unwrap();
        c.write_all(b"GET http://slow/slow?ms=30000 HTTP/1.1\r\nhost: slow\r\n\r\n")
            .await
            .unwrap();
        held.push(c);
    }
    weft_tests::eventually(
        "210 calls at the slow instance",
        Duration::from_secs(20),
        || async { (slow.count() >= 200).then_some(()) },
    )
    .await;
    let started = std::time::Instant::now();
    let rsp = curl(&[
        "-x",
        &mesh.proxy_flag(),
        "--max-time",
        "5",
        "http://world/echo",
    ])
    .await;
    println!(
        "with {} calls held at slow: world answered {} in {:?}",
        slow.count(),
        rsp.status,
        started.elapsed()
    );
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    weft_tests::eventually(
        "all 210 calls at the slow instance",
        Duration::from_secs(10),
        || async { (slow.count() == 210).then_some(()) },
    )
    .await;
    let open = metric(
        &mesh.b.metrics().await,
        "weft_tcp_open_connections{direction=\"inbound\"}",
    )
    .unwrap_or(0.0);
    assert!(open >= 2.0, "{open} connections into node B");
    drop(held);
}

/// Past `http.max_requests_in_flight` a request is answered 503 `overloaded` at once, and
/// past `http.max_connections` a connection is: a flood costs the proxy a counter, and the
/// requests it already took finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_limits_a_proxy_answers_overloaded_at_once() {
    let mesh = Mesh::with_config("[http]\nmax_connections = 3\nmax_requests_in_flight = 2\n").await;
    let proxy = mesh.proxy_flag();
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let proxy = proxy.clone();
            tokio::spawn(async move { curl(&["-x", &proxy, "http://world/slow?ms=2000"]).await })
        })
        .collect();
    weft_tests::eventually(
        "two requests in flight",
        Duration::from_secs(10),
        || async { (mesh.world.count() >= 2).then_some(()) },
    )
    .await;
    let started = std::time::Instant::now();
    let turned_away = curl(&["-x", &proxy, "http://world/echo"]).await;
    assert_eq!(turned_away.status, 503, "{}", turned_away.text());
    assert_eq!(turned_away.header("weft-error"), Some("overloaded"));
    assert!(started.elapsed() < Duration::from_secs(1));
    for s in slow {
        assert_eq!(s.await.unwrap().status, 200);
    }

    // Three connections held open: a fourth is told, and closed.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            tokio::net::TcpStream::connect(mesh.a.outbound)
                .await
                .unwrap(),
        );
    }
    let answer = refused_connection(mesh.a.outbound, "the fourth connection turned away").await;
    assert!(answer.contains("weft-error: overloaded"), "{answer}");
    let metrics = mesh.a.metrics().await;
    assert!(
        metric(
            &metrics,
            "weft_tcp_overloaded_connections_total{direction=\"outbound\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{metrics}"
    );
    // One let go, and a request is served again.
    held.pop();
    weft_tests::eventually("served again", Duration::from_secs(10), || async {
        (curl(&["-x", &proxy, "http://world/echo"]).await.status == 200).then_some(())
    })
    .await;
}

/// An HTTP/2 connection with no stream open is closed (GOAWAY) after `http.idle_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed() {
    let mesh = Mesh::with_config("[http]\nidle_timeout = \"1s\"\n").await;
    let report = abuse(mesh.a.outbound, "idle", 10).await;
    println!("idle: {report}");
    assert_eq!(report["closed"], true, "{report}");
    assert_eq!(report["goaway"], 0, "{report}");
    let secs = report["seconds"].as_f64().unwrap();
    assert!((0.9..5.0).contains(&secs), "closed after {secs} s");
}

/// An endpoint that leaves discovery has its series rendered once more (its last counts
/// collected), then removed, so a proxy's series do not grow with every rollout; one that
/// comes back counts afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_of_an_endpoint_that_left_go_after_one_more_scrape() {
    let mesh = Mesh::start().await;
    let worlds = mesh.worlds(2).await;
    for _ in 0..20 {
        assert_eq!(
            curl(&["-x", &mesh.proxy_flag(), "http://world/echo"])
                .await
                .status,
            200
        );
    }
    let series = |addr: std::net::SocketAddr| {
        format!(
            "weft_requests_total{{direction=\"outbound\",service=\"world\",endpoint=\"{addr}\"}}"
        )
    };
    let gone = worlds[1].addr;
    let before = mesh.a.metrics().await;
    let counted = metric(&before, &series(gone)).expect("both endpoints have series");
    mesh.publish(&[("world", vec![mesh.on_b(worlds[0].addr)])])
        .await;
    let once_more = mesh.a.metrics().await;
    assert_eq!(
        metric(&once_more, &series(gone)),
        Some(counted),
        "{once_more}"
    );
    let after = mesh.a.metrics().await;
    assert!(!after.contains(&format!("endpoint=\"{gone}\"")), "{after}");
    assert!(metric(&after, &series(worlds[0].addr)).is_some(), "{after}");
    // Back again: counted afresh.
    mesh.publish(&[("world", vec![mesh.on_b(gone)])]).await;
    assert_eq!(
        curl(&["-x", &mesh.proxy_flag(), "http://world/echo"])
            .await
            .status,
        200
    );
    let back = mesh.a.metrics().await;
    assert_eq!(metric(&back, &series(gone)), Some(1.0), "{back}");
}

/// The dashboard's and the control plane's HTTP listeners give a client 10 s to send its
/// request head (slowloris): one that trickles a partial head is disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_request_head_is_cut_off_at_the_dashboard_and_control_plane() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tmp = TempDir::new("slowloris");
    let disc = tmp.path("discovery.toml");
    weft_tests::discovery::write(&disc, &[]);
    let control = WeftControl::start_with(
        "127.0.0.1",
        &["--discovery-file".as_ref(), disc.as_os_str()],
    )
    .await;
    let (_dash, dashboard) =
        weft_tests::demo::start_dashboard(&["--proxy", &control.admin.to_string()]).await;
    let cut_off = |addr: std::net::SocketAddr| async move {
        let started = std::time::Instant::now();
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), c.read_to_end(&mut out))
            .await
            .expect("the listener cuts a slow head off")
            .ok();
        started.elapsed()
    };
    let (a, b) = tokio::join!(cut_off(dashboard), cut_off(control.admin));
    println!("partial heads cut off after {a:?} (dashboard) and {b:?} (control plane)");
    for took in [a, b] {
        assert!(took >= Duration::from_secs(9), "{took:?}");
    }
    // A whole request is still served.
    let (status, _) = control.admin_get("/metrics").await;
    assert_eq!(status, 200);
}

/// A client that never reads its answer cannot hold its connection, or what feeds it, for
/// ever: over HTTP/1.1 the proxy gives up after `http.stream_idle_timeout` of no progress
/// (and on a body the client stops sending, and a request nothing answers); over HTTP/2
/// such a client answers no PING either, and is cut off within 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected() {
    use tokio::io::AsyncWriteExt;
    let mesh =
        Mesh::with_config("[http]\nstream_idle_timeout = \"1s\"\nheader_read_timeout = \"1s\"\n")
            .await;
    let open = || async {
        metric(
            &mesh.a.metrics().await,
            "weft_tcp_open_connections{direction=\"outbound\"}",
        )
        .unwrap_or(-1.0)
    };
    let mut stuck = tokio::net::TcpStream::connect(mesh.a.outbound)
        .await
        .unwrap();
    stuck
        .write_all(b"GET http://world/bytes?n=50000000 HTTP/1.1\r\nhost: world\r\n\r\n")
        .await
        .unwrap();
    weft_tests::eventually("the connection open", Duration::from_secs(5), || async {
        (open().await == 1.0).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    weft_tests::eventually(
        "the reader that never reads cut off",
        Duration::from_secs(15),
        || async { (open().await == 0.0).then_some(()) },
    )
    .await;
    println!(
        "HTTP/1.1 client that never reads cut off after {:?}",
        started.elapsed()
    );
    drop(stuck);

    // Nor can one that begins a body and sends no more of it.
    let mut silent = tokio::net::TcpStream::connect(mesh.a.outbound)
        .await
        .unwrap();
    silent
        .write_all(b"POST http://world/echo HTTP/1.1\r\nhost: world\r\ncontent-length: 1000\r\n\r\nten bytes.")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut silent, &mut answer),
    )
    .await
    .expect("a body that stalls is given up on")
    .ok();
    println!(
        "a body that stalled given up on after {:?}: {}",
        started.elapsed(),
        String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or("")
    );
    assert!(started.elapsed() >= Duration::from_millis(900));

    // Nor a request whose instance never answers: nothing moves either way.
    let started = std::time::Instant::now();
    let hung = curl(&["-x", &mesh.proxy_flag(), "http://world/hang"]).await;
    println!(
        "a request left unanswered ended after {:?}",
        started.elapsed()
    );
    assert_eq!(hung.status, 504, "{}", hung.text());
    assert_eq!(hung.header("weft-error"), Some("stream idle"));
    assert!(started.elapsed() < Duration::from_secs(5));

    let report = abuse(mesh.a.outbound, "never_read", 45).await;
    println!("HTTP/2 never_read: {report}");
    assert_eq!(report["closed"], true, "{report}");
    assert!(report["seconds"].as_f64().unwrap() < 40.0, "{report}");
    let rsp = curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
}

/// An upgraded connection (WebSocket) keeps its place among the listener's connections for
/// as long as it relays: upgrades cannot be used to open more than `http.max_connections`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_connection_keeps_its_place_in_the_cap() {
    let mesh = Mesh::with_config("[http]\nmax_connections = 2\n").await;
    let (ws_addr, _server) = weft_tests::backend::ws_echo(weft_tests::mesh::NODE_B).await;
    mesh.publish(&[("world", vec![mesh.on_b(ws_addr)])]).await;
    let stream = tokio::net::TcpStream::connect(mesh.a.outbound)
        .await
        .unwrap();
    let (_ws, rsp) = tokio_tungstenite::client_async("ws://world/chat", stream)
        .await
        .unwrap();
    assert_eq!(rsp.status(), 101);
    let _idle = tokio::net::TcpStream::connect(mesh.a.outbound)
        .await
        .unwrap();
    let answer = refused_connection(mesh.a.outbound, "a third connection turned away").await;
    assert!(answer.contains("weft-error: overloaded"), "{answer}");
}

/// What a new connection to `addr` is told, once the listener turns one away (a 503).
async fn refused_connection(addr: std::net::SocketAddr, what: &str) -> String {
    use tokio::io::AsyncReadExt;
    weft_tests::eventually(what, Duration::from_secs(10), || async {
        let mut c = tokio::net::TcpStream::connect(addr).await.ok()?;
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(2), c.read_to_end(&mut out))
            .await
            .ok()?
            .ok()?;
        let text = String::from_utf8_lossy(&out).into_owned();
        text.starts_with("HTTP/1.1 503").then_some(text)
    })
    .await
}
