//! Errors the proxy makes are responses with a status and a `weft-error` header, and bad
//! input never takes the proxy down: each case is followed by a request that must succeed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_tests::backend::rude;
use weft_tests::client::curl;
use weft_tests::discovery::Ep;
use weft_tests::mesh::{Mesh, NODE_A, NODE_B};
use weft_tests::proxy::weft_bin;
use weft_tests::TempDir;

async fn assert_still_serving(mesh: &Mesh) {
    let rsp = curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
    assert_eq!(rsp.status, 200, "proxy stopped serving: {}", rsp.text());
}

/// Sends raw bytes and returns whatever the proxy answers before closing (or 2 s pass).
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn proxy_made_errors_carry_status_and_weft_error() {
    let mesh = Mesh::start().await;
    let (rude_addr, _rude) = rude(NODE_B).await;
    let dead = weft_tests::free_addr(NODE_B);
    mesh.publish(&[
        ("world", vec![mesh.on_b(mesh.world.addr)]),
        ("empty", vec![]),
        ("refused", vec![Ep::direct(dead)]),
        (
            "deadnode",
            vec![Ep::on(mesh.world.addr, weft_tests::free_addr(NODE_B))],
        ),
        ("rude", vec![mesh.on_b(rude_addr)]),
        // HTTP/2 instances whose answers carry a 1 MiB header, straight and behind node B.
        ("huge", vec![Ep::direct(mesh.world.addr).h2()]),
        ("hugeb", vec![mesh.on_b(mesh.world.addr).h2()]),
    ])
    .await;
    let proxy = mesh.proxy_flag();
    let cases = [
        ("http://nowhere/", 502, "unknown service"),
        ("http://empty/", 503, "no endpoints"),
        ("http://refused/", 502, "connect refused"),
        ("http://deadnode/", 502, "connect refused"),
        ("http://rude/", 502, "upstream reset"),
        ("http://huge/huge-header?kb=1024", 502, "upstream reset"),
        ("http://hugeb/huge-header?kb=1024", 502, "upstream reset"),
    ];
    for (url, status, error) in cases {
        let rsp = curl(&["-x", &proxy, url]).await;
        assert_eq!(rsp.status, status, "{url}: {}", rsp.text());
        assert_eq!(rsp.header("weft-error"), Some(error), "{url}");
        let body = rsp.text();
        assert!(
            body.starts_with("weft: ") && body.ends_with('\n') && body.lines().count() == 1,
            "{body:?}"
        );
    }
    assert_still_serving(&mesh).await;
}

#[tokio::test]
async fn a_connect_that_hangs_times_out_with_504() {
    let mesh = Mesh::start_with(&["--connect-timeout", "300ms"]).await;
    // A listener that never accepts, with its backlog full: further SYNs go unanswered.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{NODE_B}:0").parse().unwrap()).unwrap();
    let listener = sock.listen(1).unwrap();
    let full = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(full)).await
        {
            fillers.push(s);
        }
    }
    mesh.publish(&[
        ("world", vec![mesh.on_b(mesh.world.addr)]),
        ("stuck", vec![Ep::direct(full)]),
    ])
    .await;
    let start = Instant::now();
    let rsp = curl(&["-x", &mesh.proxy_flag(), "http://stuck/"]).await;
    assert_eq!(rsp.status, 504, "{}", rsp.text());
    assert_eq!(rsp.header("weft-error"), Some("connect timeout"));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn inbound_is_not_an_open_relay() {
    let mesh = Mesh::start().await;
    let elsewhere = Backend2::start().await;
    mesh.publish(&[
        ("world", vec![mesh.on_b(mesh.world.addr)]),
        ("remote", vec![Ep::on(elsewhere.0.addr, mesh.a.inbound)]),
    ])
    .await;
    let url = format!("http://{}/echo", mesh.b.inbound);
    // An endpoint that discovery places on another node.
    let rsp = curl(&[
        "-H",
        "Host: remote",
        "-H",
        &format!("weft-dst-service: remote;endpoint={}", elsewhere.0.addr),
        &url,
    ])
    .await;
    assert_eq!(rsp.status, 403, "{}", rsp.text());
    assert_eq!(rsp.header("weft-error"), Some("endpoint not on this node"));
    // An address discovery never named.
    let rsp = curl(&[
        "-H",
        "Host: world",
        "-H",
        "weft-dst-service: world; endpoint=127.0.0.1:22",
        &url,
    ])
    .await;
    assert_eq!(rsp.status, 403);
    // A route that names something else than an endpoint.
    let rsp = curl(&[
        "-H",
        "Host: world",
        "-H",
        "weft-dst-service: world;node=b",
        &url,
    ])
    .await;
    assert_eq!(rsp.status, 400, "{}", rsp.text());
    assert_eq!(rsp.header("weft-error"), Some("bad request"));
    // A host that is no service at all.
    let rsp = curl(&["-H", "Host: example.com", &url]).await;
    assert_eq!(rsp.status, 502);
    assert_eq!(rsp.header("weft-error"), Some("unknown service"));
    // A service with no instance on this node.
    let rsp = curl(&["-H", "Host: remote", &url]).await;
    assert_eq!(rsp.status, 503);
    assert_eq!(elsewhere.0.count(), 0);
    // A plain client naming a local service gets the local instance.
    let rsp = curl(&["-H", "Host: world", &url]).await;
    assert_eq!(rsp.status, 200);
}

struct Backend2(weft_tests::backend::Backend);

impl Backend2 {
    async fn start() -> Self {
        Self(weft_tests::backend::Backend::start(NODE_A).await)
    }
}

#[tokio::test]
async fn malformed_and_smuggling_requests_are_refused() {
    let mesh = Mesh::start_with(&["--max-header-bytes", "16384"]).await;
    let out = mesh.a.outbound;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), "400"),
        ("bad header", b"GET / HTTP/1.1\r\nHost: world\r\nno colon here\r\n\r\n".to_vec(), "400"),
        (
            "conflicting content-length",
            b"POST /echo HTTP/1.1\r\nHost: world\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
            "400",
        ),
        (
            "oversized headers",
            format!("GET / HTTP/1.1\r\nHost: world\r\nx-big: {}\r\n\r\n", "a".repeat(20_000)).into_bytes(),
            "431",
        ),
        ("absolute-form to a host outside the mesh, unlisted", b"GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n".to_vec(), "403"),
        ("no host", b"GET / HTTP/1.0\r\n\r\n".to_vec(), "400"),
        (
            "a deadline centuries away (capped, not a panic)",
            b"GET /echo HTTP/1.1\r\nHost: world\r\nweft-ctx-deadline: 18446744073709551615\r\nConnection: close\r\n\r\n".to_vec(),
            "200",
        ),
    ];
    let n = cases.len();
    for (what, bytes, status) in cases {
        let answer = raw(out, &bytes).await;
        let line = answer.lines().next().unwrap_or("");
        assert!(
            line.contains(status),
            "{what}: expected {status}, got {answer:?}"
        );
        if status != "200" {
            assert!(
                answer.to_ascii_lowercase().contains("\r\nweft-error: "),
                "{what}: a refusal says why in weft-error: {answer:?}"
            );
        }
        assert_still_serving(&mesh).await;
    }
    assert_eq!(
        mesh.world.count(),
        n + 1,
        "only the still-serving checks and the far-deadline request reach the instance"
    );
}

/// Content-Length and Transfer-Encoding together: weft frames by Transfer-Encoding, as RFC
/// 9112 §6.3 says, and closes the connection after answering, so whatever the
/// Content-Length view would have made a second request is never read as one.
#[tokio::test]
async fn content_length_with_transfer_encoding_cannot_smuggle_a_request() {
    let mesh = Mesh::start().await;
    let smuggle = b"POST /echo HTTP/1.1\r\nHost: world\r\nContent-Length: 45\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: world\r\n\r\n";
    let answer = raw(mesh.a.outbound, smuggle).await;
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 400") || head.contains("connection: close"),
        "{answer:?}"
    );
    assert!(
        answer.matches("x-backend:").count() <= 1,
        "a second response came back: {answer:?}"
    );
    assert!(!answer.contains("/smuggled"), "{answer:?}");
    assert!(mesh.world.count() <= 1);
    assert_still_serving(&mesh).await;
}

/// Asserts the proxy closes `s` (reading reaches the end) within 5 s, and less than 3 s
/// after `since`.
async fn closed_soon(s: &mut TcpStream, since: Instant, who: &str) {
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(n.is_ok(), "{who} still connected after 5 s");
    assert!(
        since.elapsed() < Duration::from_secs(3),
        "{who}: {:?}",
        since.elapsed()
    );
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_vanishing_clients_leak_nothing() {
    let mesh = Mesh::start_with(&["--header-read-timeout", "500ms"]).await;
    let out = mesh.a.outbound;
    // Slowloris: half a request head, then silence.
    let start = Instant::now();
    let mut s = TcpStream::connect(out).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: wor").await.unwrap();
    closed_soon(&mut s, start, "slow client").await;
    // The timer starts again with each request on a kept-alive connection: a second
    // request 350 ms after the first answer (650 ms after connecting) is served, and silence
    // after it is cut off.
    let mut s = TcpStream::connect(out).await.unwrap();
    let mut seen = String::new();
    for (wait, status) in [(300, "201"), (350, "202")] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let ask = format!("GET /status/{status} HTTP/1.1\r\nHost: world\r\n\r\n");
        s.write_all(ask.as_bytes()).await.unwrap();
        let body = format!("status {status}\n");
        let answered = tokio::time::timeout(Duration::from_secs(3), async {
            let mut chunk = [0u8; 1024];
            while !seen.contains(&body) {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.push_str(&String::from_utf8_lossy(&chunk[..n])),
                }
            }
        })
        .await;
        assert!(
            answered.is_ok() && seen.contains(&body),
            "{status}: {seen:?}"
        );
    }
    closed_soon(&mut s, Instant::now(), "idle keep-alive client").await;
    // Clients that promise a body and vanish halfway.
    for _ in 0..20 {
        let mut s = TcpStream::connect(out).await.unwrap();
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: world\r\nContent-Length: 100000\r\n\r\npartial")
            .await
            .unwrap();
        drop(s);
    }
    assert_still_serving(&mesh).await;
    let series = "weft_tcp_open_connections{direction=\"outbound\"}";
    weft_tests::eventually(
        "client connections closed",
        Duration::from_secs(5),
        || async { (mesh.a.sample(series).await == Some(0.0)).then_some(()) },
    )
    .await;
    assert!(!mesh.a.log().contains("panicked"), "{}", mesh.a.log());
}

#[tokio::test]
async fn config_errors_at_start_name_file_and_line() {
    let dir = TempDir::new("badconfig");
    let cfg = dir.path("proxy.toml");
    std::fs::write(&cfg, "node = \"a\"\n\n[http]\nconnect_timeout = \"soon\"\n").unwrap();
    let out = std::process::Command::new(weft_bin())
        .arg("proxy")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("proxy.toml:4:"), "{err}");
    assert!(err.contains("invalid duration"), "{err}");

    let disc = dir.path("discovery.toml");
    std::fs::write(
        &disc,
        "[[services.world.endpoints]]\naddr = \"not an address\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(weft_bin())
        .args([
            "proxy",
            "--outbound",
            "127.0.0.1:0",
            "--inbound",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .arg("--discovery-file")
        .arg(&disc)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("discovery.toml:2:"), "{err}");

    // A busy port is named.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().to_string();
    let out = std::process::Command::new(weft_bin())
        .args([
            "proxy",
            "--outbound",
            &port,
            "--inbound",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&port) && err.contains("outbound"), "{err}");
}
