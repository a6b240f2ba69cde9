//! Requests of every shape cross both hops intact: HTTP/1.1 (origin and absolute form),
//! h2c, streaming bodies both ways, trailers, 100-continue, connection reuse.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use weft_tests::backend::{fnv, pattern};
use weft_tests::client::{curl, h2_connect, send_h1};
use weft_tests::discovery::Ep;
use weft_tests::eventually;
use weft_tests::mesh::Mesh;

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

#[tokio::test]
async fn absolute_form_request_crosses_both_hops_intact() {
    let mesh = Mesh::start().await;
    let rsp = curl(&[
        "-x",
        &mesh.proxy_flag(),
        "-X",
        "PUT",
        "-H",
        "x-custom: kept",
        "-H",
        "Connection: x-hop",
        "-H",
        "x-hop: dropped",
        "-H",
        "weft-dst-service: world;endpoint=127.0.0.9:1",
        "--data-binary",
        "hello body",
        "http://world/some/path?q=1&x=y%20z",
    ])
    .await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    assert_eq!(
        rsp.header("x-backend"),
        Some(mesh.world.addr.to_string().as_str())
    );
    let echo = json(&rsp.body);
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["uri"], "/some/path?q=1&x=y%20z");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["headers"]["host"][0], "world");
    assert_eq!(echo["headers"]["x-custom"][0], "kept");
    assert_eq!(echo["body_len"], 10);
    for gone in [
        "x-hop",
        "proxy-connection",
        "weft-dst-service",
        "weft-orig-proto",
        "weft-ctx-timeout",
    ] {
        assert!(
            echo["headers"].get(gone).is_none(),
            "{gone} reached the instance: {echo}"
        );
    }
}

#[tokio::test]
async fn each_client_version_reaches_the_instance_as_it_was_sent() {
    // The hop between the proxies is HTTP/2 either way; only HTTP/1.0 is marked on it.
    let mesh = Mesh::start().await;
    for (flag, version) in [("--http1.0", "HTTP/1.0"), ("--http1.1", "HTTP/1.1")] {
        let rsp = curl(&[flag, "-x", &mesh.proxy_flag(), "http://world/echo"]).await;
        assert_eq!(rsp.status, 200, "{flag}: {}", rsp.text());
        let echo = json(&rsp.body);
        assert_eq!(echo["version"], version, "{flag}: {echo}");
        assert!(echo["headers"].get("weft-orig-proto").is_none(), "{echo}");
    }
}

#[tokio::test]
async fn every_kubernetes_spelling_of_the_host_reaches_the_service() {
    let mesh = Mesh::start().await;
    for host in [
        "world",
        "world:7778",
        "world.default",
        "world.default.svc.cluster.local",
    ] {
        let url = format!("http://{}/echo", mesh.a.outbound);
        let rsp = curl(&["-H", &format!("Host: {host}"), &url]).await;
        assert_eq!(rsp.status, 200, "{host}: {}", rsp.text());
        assert_eq!(json(&rsp.body)["headers"]["host"][0], host);
    }
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served_on_the_outbound_port() {
    let mesh = Mesh::start().await;
    let url = format!("http://{}/echo?h2=1", mesh.a.outbound);
    let rsp = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "Host: world",
        "-d",
        "abc",
        &url,
    ])
    .await;
    assert_eq!(rsp.status, 200);
    assert!(rsp.raw_head.starts_with("HTTP/2 200"), "{}", rsp.raw_head);
    let echo = json(&rsp.body);
    // The instance speaks HTTP/1.1, so the inbound side delivers in it.
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["uri"], "/echo?h2=1");
    assert_eq!(echo["body_len"], 3);
}

#[tokio::test]
async fn an_h2_client_multiplexes_many_requests_on_one_connection() {
    let mesh = Mesh::start().await;
    let tx = h2_connect::<Empty<Bytes>>(mesh.a.outbound).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let req = http::Request::get(format!("http://world/echo?i={i}"))
                .body(Empty::new())
                .unwrap();
            tx.ready().await.unwrap();
            let rsp = tx.send_request(req).await.unwrap();
            assert_eq!(rsp.status(), 200);
            let body = rsp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(json(&body)["uri"], format!("/echo?i={i}"));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(mesh.world.count(), 50);
}

#[tokio::test]
async fn an_h2_client_with_a_tiny_window_still_gets_whole_bodies() {
    // A body's small last chunk is handed to h2 before the client's window has room for
    // it; the rest must follow as the client opens its window, whatever the chunk's size.
    let mesh = Mesh::start().await;
    let io = hyper_util::rt::TokioIo::new(
        tokio::net::TcpStream::connect(mesh.a.outbound)
            .await
            .unwrap(),
    );
    let (mut tx, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(100)
            .initial_connection_window_size(300)
            .handshake::<_, Empty<Bytes>>(io)
            .await
            .unwrap();
    tokio::spawn(conn);
    // The backend repeats one 64 KiB block.
    let block = pattern(64 * 1024);
    for n in [99, 100, 101, 5_000, 16 * 1024, 16 * 1024 + 1, 200_000] {
        let req = http::Request::get(format!("http://world/bytes?n={n}"))
            .body(Empty::new())
            .unwrap();
        let rsp = tokio::time::timeout(Duration::from_secs(10), async {
            tx.ready().await.unwrap();
            let rsp = tx.send_request(req).await.unwrap();
            assert_eq!(rsp.status(), 200);
            rsp.into_body().collect().await.unwrap().to_bytes()
        })
        .await
        .unwrap_or_else(|_| panic!("a {n}-byte body stalled behind the client's window"));
        let expected: Vec<u8> = block.iter().copied().cycle().take(n).collect();
        assert_eq!(rsp.len(), n);
        assert_eq!(fnv(&rsp), fnv(&expected), "{n} bytes");
    }
}

#[tokio::test]
async fn an_h2_client_that_gives_up_cancels_the_request_on_the_instance() {
    let mesh = Mesh::start().await;
    let mut tx = h2_connect::<Empty<Bytes>>(mesh.a.outbound).await;
    let mut waiting = tx.clone();
    let pending = tokio::spawn(async move {
        let req = http::Request::get("http://world/hang")
            .body(Empty::new())
            .unwrap();
        waiting.send_request(req).await
    });
    let world = &mesh.world;
    eventually(
        "the instance to get the request",
        Duration::from_secs(5),
        || async { (world.count() == 1).then_some(()) },
    )
    .await;
    // Dropping the response resets the stream; both proxies pass the cancel on.
    pending.abort();
    eventually(
        "the instance to see its request cancelled",
        Duration::from_secs(5),
        || async { (world.cancelled.load(Ordering::SeqCst) == 1).then_some(()) },
    )
    .await;
    // The connection itself carries on.
    let req = http::Request::get("http://world/echo")
        .body(Empty::new())
        .unwrap();
    assert_eq!(tx.send_request(req).await.unwrap().status(), 200);
}

#[tokio::test]
async fn response_trailers_survive_two_hops_from_an_h1_instance() {
    let mesh = Mesh::start().await;
    let mut tx = h2_connect::<Empty<Bytes>>(mesh.a.outbound).await;
    let req = http::Request::get("http://world/trailers?grpc-status=7")
        .header("te", "trailers")
        .body(Empty::new())
        .unwrap();
    let rsp = tx.send_request(req).await.unwrap();
    assert_eq!(rsp.status(), 200);
    let collected = rsp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers arrive");
    assert_eq!(trailers["grpc-status"], "7");
    assert_eq!(trailers["x-trailer"], "yes");
    assert_eq!(collected.to_bytes(), "with trailers\n");
}

#[tokio::test]
async fn an_h2_instance_is_reached_directly_without_a_node_proxy() {
    let mesh = Mesh::start().await;
    let eps = vec![Ep::direct(mesh.world.addr).h2()];
    mesh.publish(&[("world", eps)]).await;
    let mut tx = h2_connect::<Empty<Bytes>>(mesh.a.outbound).await;
    let rsp = tx
        .send_request(
            http::Request::get("http://world/echo")
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(json(&body)["version"], "HTTP/2.0");
    // Straight to the instance: node B's inbound side saw nothing.
    let inbound = mesh.b.metrics().await;
    assert!(
        !inbound.contains("direction=\"inbound\",service=\"world\",endpoint=\""),
        "{inbound}"
    );
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let mesh = Mesh::start().await;
    let upload = pattern(8 * 1024 * 1024 + 17);
    let file = mesh.dir.path("upload.bin");
    std::fs::write(&file, &upload).unwrap();
    let proxy = mesh.proxy_flag();
    // Chunked upload of 8 MiB.
    let rsp = curl(&[
        "-x",
        &proxy,
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", file.display()),
        "http://world/echo",
    ])
    .await;
    assert_eq!(rsp.status, 200);
    let echo = json(&rsp.body);
    assert_eq!(echo["body_len"], upload.len());
    assert_eq!(echo["body_hash"], fnv(&upload));
    // 32 MiB download.
    let n = 32 * 1024 * 1024;
    let rsp = curl(&["-x", &proxy, &format!("http://world/bytes?n={n}")]).await;
    assert_eq!(rsp.status, 200);
    assert_eq!(rsp.body.len(), n);
    assert_eq!(rsp.body[..1000], pattern(1000)[..]);
}

#[tokio::test]
async fn responses_stream_as_they_are_produced() {
    let mesh = Mesh::start().await;
    let req = http::Request::get("/stream?n=4&ms=400")
        .header("host", "world")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let io = hyper_util::rt::TokioIo::new(
        tokio::net::TcpStream::connect(mesh.a.outbound)
            .await
            .unwrap(),
    );
    let (mut tx, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let start = Instant::now();
    let rsp = tx.send_request(req).await.unwrap();
    let mut body = rsp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let first_at = start.elapsed();
    assert_eq!(first, "chunk 0\n");
    let mut rest = Vec::new();
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.unwrap().into_data() {
            rest.extend_from_slice(&d);
        }
    }
    let total = start.elapsed();
    assert_eq!(rest, b"chunk 1\nchunk 2\nchunk 3\n");
    assert!(
        first_at < Duration::from_millis(350),
        "first chunk after {first_at:?}"
    );
    assert!(
        total >= Duration::from_millis(1200),
        "whole stream in {total:?}"
    );
}

#[tokio::test]
async fn expect_100_continue_is_answered_and_the_body_delivered() {
    let mesh = Mesh::start().await;
    let file = mesh.dir.path("body.bin");
    std::fs::write(&file, pattern(300_000)).unwrap();
    let start = Instant::now();
    let rsp = curl(&[
        "-x",
        &mesh.proxy_flag(),
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &format!("@{}", file.display()),
        "http://world/echo",
    ])
    .await;
    assert_eq!(rsp.status, 200);
    assert!(rsp.raw_head.contains("100 Continue"), "{}", rsp.raw_head);
    assert_eq!(json(&rsp.body)["body_len"], 300_000);
    // curl waits a full second for a 100 that never comes; it must not have had to.
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn idle_upstream_connections_are_reused() {
    let mesh = Mesh::start().await;
    for i in 0..20 {
        // Chunked and sized responses alike hand their connection back.
        let path = if i % 2 == 0 { "/echo" } else { "/status/200" };
        let req = http::Request::get(path)
            .header("host", "world")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(send_h1(mesh.a.outbound, req).await.unwrap().status, 200);
    }
    assert_eq!(mesh.world.count(), 20);
    let conns = mesh
        .world
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        conns <= 2,
        "20 sequential requests used {conns} instance connections"
    );
}

#[tokio::test]
async fn idle_pools_are_reaped() {
    let mesh = Mesh::start_with(&["--pool-idle-timeout", "300ms"]).await;
    let rsp = curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
    assert_eq!(rsp.status, 200);
    // The instance sees its idle connection from node B's proxy closed.
    let probe = || async {
        let ss = tokio::process::Command::new("ss")
            .args([
                "-Htn",
                "state",
                "established",
                &format!("sport = :{}", mesh.world.addr.port()),
            ])
            .output()
            .await
            .ok()?;
        String::from_utf8_lossy(&ss.stdout)
            .trim()
            .is_empty()
            .then_some(())
    };
    weft_tests::eventually("idle connection reaped", Duration::from_secs(5), probe).await;
}

#[tokio::test]
async fn many_http1_clients_share_one_h2_connection_to_the_peer() {
    let mesh = Mesh::start().await;
    let proxy = mesh.proxy_flag();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let proxy = proxy.clone();
        tasks.push(tokio::spawn(async move {
            curl(&["-x", &proxy, &format!("http://world/slow?ms=200&i={i}")])
                .await
                .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let accepted = mesh
        .b
        .sample("weft_tcp_accepted_connections_total{direction=\"inbound\"}")
        .await;
    assert_eq!(
        accepted,
        Some(1.0),
        "the hop to node B is one multiplexed connection"
    );
}

#[tokio::test]
async fn an_http10_request_is_restored_on_the_far_side() {
    let mesh = Mesh::start().await;
    let rsp = curl(&["--http1.0", "-x", &mesh.proxy_flag(), "http://world/echo"]).await;
    assert_eq!(rsp.status, 200);
    assert_eq!(json(&rsp.body)["version"], "HTTP/1.0");
}
