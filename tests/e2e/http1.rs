//! HTTP/1.1 as weft speaks it itself, at both edges: several requests on one client
//! connection (pipelined, HEAD, bodiless statuses) framed right, and instances that close
//! their idle connections costing no request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weft_tests::discovery::Ep;
use weft_tests::mesh::{Mesh, NODE_B};

/// Writes `bytes` on one connection and reads until the proxy closes it (or 3 s pass).
async fn exchange(mesh: &Mesh, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(mesh.a.outbound).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "the proxy did not close after Connection: close: {out:?}"
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// A test instance's side: reads until a request head has ended (with `buf` for each read);
/// false when the connection ends first.
async fn read_through_head(s: &mut TcpStream, buf: &mut [u8]) -> bool {
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(buf).await {
            Ok(0) | Err(_) => return false,
            Ok(k) => got.extend_from_slice(&buf[..k]),
        }
    }
    true
}

fn statuses(answer: &str) -> Vec<&str> {
    answer
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answer[i + 9..i + 12])
        .collect()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let mesh = Mesh::start().await;
    let answer = exchange(
        &mesh,
        b"GET /status/201 HTTP/1.1\r\nHost: world\r\n\r\n\
          GET /status/202 HTTP/1.1\r\nHost: world\r\n\r\n\
          GET /status/203 HTTP/1.1\r\nHost: world\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&answer), ["201", "202", "203"], "{answer}");
    for body in ["status 201\n", "status 202\n", "status 203\n"] {
        assert_eq!(answer.matches(body).count(), 1, "{answer}");
    }
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(mesh.world.count(), 3);
}

#[tokio::test]
async fn head_and_bodiless_answers_keep_the_connection_in_step() {
    let mesh = Mesh::start().await;
    let answer = exchange(
        &mesh,
        b"HEAD /status/200 HTTP/1.1\r\nHost: world\r\n\r\n\
          GET /status/204 HTTP/1.1\r\nHost: world\r\n\r\n\
          GET /status/200 HTTP/1.1\r\nHost: world\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&answer), ["200", "204", "200"], "{answer}");
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        head.contains("content-length: 11"),
        "a HEAD answer keeps the length a GET would have had: {head}"
    );
    // One body in all: the HEAD and the 204 carried none.
    assert_eq!(answer.matches("status 200\n").count(), 1, "{answer}");
    assert!(answer.ends_with("status 200\n"), "{answer}");
}

/// An instance that answers with keep-alive framing and then closes each connection, as
/// servers do when their idle timeout passes: the proxy must notice the pooled connection
/// is gone (or find out on sending) and use a fresh one, never failing the request.
#[tokio::test]
async fn an_instance_that_closes_its_connections_costs_no_request() {
    let mesh = Mesh::start().await;
    let listener = TcpListener::bind(format!("{NODE_B}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let server = tokio::spawn(async move {
        let mut n = 0u32;
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            n += 1;
            // Every other connection lingers a little before closing, so the proxy meets
            // both a connection already closed and one that closes as it is reused.
            let linger = if n.is_multiple_of(2) { 20 } else { 0 };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                if !read_through_head(&mut s, &mut buf).await {
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n")
                    .await;
                tokio::time::sleep(Duration::from_millis(linger)).await;
            });
        }
    });
    mesh.publish(&[("closer", vec![Ep::direct(addr)])]).await;
    let mut ok = 0;
    for i in 0..30 {
        let rsp = weft_tests::client::curl(&["-x", &mesh.proxy_flag(), "http://closer/"]).await;
        assert_eq!(rsp.status, 200, "request {i}: {}", rsp.text());
        assert_eq!(rsp.text(), "ok\n");
        ok += 1;
        tokio::time::sleep(Duration::from_millis(5 * (i % 4))).await;
    }
    assert_eq!(ok, 30);
    assert!(
        accepted.load(Ordering::SeqCst) >= 30,
        "one connection per request"
    );
    server.abort();
}

/// An instance that answers before it has read the request body (a 413, say) gets its answer
/// through; the proxy stops sending the rest and does not reuse that connection.
#[tokio::test]
async fn an_answer_before_the_request_body_is_relayed() {
    let mesh = Mesh::start().await;
    let listener = TcpListener::bind(format!("{NODE_B}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                if !read_through_head(&mut s, &mut buf).await {
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbig\n")
                    .await;
                let _ = s.shutdown().await;
                // Read and drop the rest for a while, as servers do before closing.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Ok(k) = s.read(&mut buf).await {
                        if k == 0 {
                            break;
                        }
                    }
                })
                .await;
            });
        }
    });
    mesh.publish(&[
        ("world", vec![mesh.on_b(mesh.world.addr)]),
        ("early", vec![Ep::direct(addr)]),
    ])
    .await;
    let mut s = TcpStream::connect(mesh.a.outbound).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: early\r\nContent-Length: 4000000\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&vec![b'x'; 64 * 1024]).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "no answer within 5 s");
    let answer = String::from_utf8_lossy(&out);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.ends_with("big\n"), "{answer}");
    server.abort();
    // The proxy still serves the instance's neighbours.
    let rsp = weft_tests::client::curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
    assert_eq!(rsp.status, 200);
}
