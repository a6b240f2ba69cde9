//! `CONNECT` tunnels through the outbound, as clients that honour `http_proxy` open them:
//! HTTP inside served request by request (curl, a WebSocket library), TLS inside relayed
//! to another node as opaque bytes, and every tunnel that would leave the mesh refused.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_tests::client::curl;
use weft_tests::discovery;
use weft_tests::mesh::{Mesh, NODE_B};
use weft_tests::proxy::metric;
use weft_tests::{python, TempDir};

/// Writes `bytes` on a fresh connection to `addr` and reads what comes back until the
/// proxy closes it (or 5 s pass).
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn curl_through_a_tunnel_reaches_the_service_and_each_request_counts() {
    let mesh = Mesh::start().await;
    let proxy = mesh.proxy_flag();
    for _ in 0..3 {
        let rsp = curl(&["-p", "-x", &proxy, "http://world/echo"]).await;
        assert_eq!(rsp.status, 200, "{}", rsp.raw_head);
        let echo: serde_json::Value = serde_json::from_slice(&rsp.body).unwrap();
        assert_eq!(echo["method"], "GET", "{echo}");
    }
    assert_eq!(mesh.world.count(), 3);
    let m = mesh.a.metrics().await;
    let tunnels = "weft_tunnels_total{direction=\"outbound\",service=\"world\",carried=\"http\"}";
    assert_eq!(metric(&m, tunnels), Some(3.0), "{m}");
    let endpoint = mesh.world.addr;
    let requests = format!(
        "weft_requests_total{{direction=\"outbound\",service=\"world\",endpoint=\"{endpoint}\"}}"
    );
    assert_eq!(metric(&m, &requests), Some(3.0), "{m}");
}

/// A WebSocket library set to use an HTTP proxy tunnels, then upgrades inside the tunnel.
#[tokio::test]
async fn a_websocket_library_behind_http_proxy_echoes_through_a_tunnel() {
    let mesh = Mesh::start().await;
    let (ws_addr, server) = weft_tests::backend::ws_echo(NODE_B).await;
    mesh.publish(&[("world", vec![mesh.on_b(ws_addr)])]).await;
    let proxy = mesh.proxy_flag();
    let echo = python::run(
        "tunnel_peers.py",
        &["ws", &proxy, "ws://world/chat", "through"],
    )
    .await;
    assert_eq!(echo.trim(), "through");
    server.abort();
}

/// An app's own HTTPS to a mesh service: the TLS is relayed whole to the instance on the
/// other node, through that node's proxy, never decrypted.
#[tokio::test]
async fn tls_inside_a_tunnel_is_relayed_to_an_instance_on_another_node() {
    let mesh = Mesh::start().await;
    let dir = TempDir::new("tls-peer");
    let folder = dir.path("").to_string_lossy().into_owned();
    let (_server, port) = python::serve("tunnel_peers.py", &["tls-serve", NODE_B, &folder]).await;
    let addr = format!("{NODE_B}:{port}").parse().unwrap();
    mesh.publish(&[("secure", vec![mesh.on_b(addr)])]).await;
    let url = format!("https://secure:{port}/");
    let rsp = curl(&["-k", "-x", &mesh.proxy_flag(), &url]).await;
    assert_eq!(rsp.status, 200, "{}", rsp.raw_head);
    assert_eq!(rsp.text(), format!("tls hello from {port}\n"));
    let a = mesh.a.metrics().await;
    let opened = "weft_tunnels_total{direction=\"outbound\",service=\"secure\",carried=\"tls\"}";
    assert_eq!(metric(&a, opened), Some(1.0), "{a}");
    // The relay's bytes are counted when it ends: after curl has gone, soon.
    weft_tests::eventually(
        "the relay's bytes counted",
        Duration::from_secs(5),
        || async {
            let a = mesh.a.metrics().await;
            let read = "weft_tunnel_read_bytes_total{direction=\"outbound\",service=\"secure\"}";
            metric(&a, read).filter(|n| *n > 0.0)
        },
    )
    .await;
    let b = mesh.b.metrics().await;
    let accepted = "weft_tunnels_total{direction=\"inbound\",service=\"secure\",carried=\"tls\"}";
    assert_eq!(metric(&b, accepted), Some(1.0), "{b}");
}

#[tokio::test]
async fn tunnels_that_would_leave_the_mesh_or_misuse_it_are_refused() {
    let mesh = Mesh::start_with(&["--header-read-timeout", "1s"]).await;
    let out = mesh.a.outbound;
    let cases: [(&str, &[u8], &str, &str); 4] = [
        (
            "a name that is no mesh service",
            b"CONNECT nowhere.example:443 HTTP/1.1\r\nHost: nowhere.example:443\r\n\r\n",
            "403",
            "egress denied",
        ),
        (
            "a target without a port",
            b"CONNECT world HTTP/1.1\r\nHost: world\r\n\r\n",
            "400",
            "bad request",
        ),
        (
            "a path for a target",
            b"CONNECT /world HTTP/1.1\r\nHost: world\r\n\r\n",
            "400",
            "bad request",
        ),
        (
            "a request inside the tunnel for another service",
            b"CONNECT world:80 HTTP/1.1\r\nHost: world:80\r\n\r\nGET / HTTP/1.1\r\nHost: hello\r\n\r\n",
            "421",
            "misdirected request",
        ),
    ];
    for (what, bytes, status, why) in cases {
        let answer = exchange(out, bytes).await;
        let last = answer.rfind("HTTP/1.1 ").map_or("", |i| &answer[i..]);
        assert!(
            last.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {answer:?}"
        );
        assert!(
            last.to_ascii_lowercase()
                .contains(&format!("weft-error: {why}")),
            "{what}: {answer:?}"
        );
    }
    assert_eq!(mesh.world.count(), 0, "no instance saw any of them");

    // A tunnel whose client never sends anything is closed at the header-read timeout.
    let mut s = TcpStream::connect(out).await.unwrap();
    s.write_all(b"CONNECT world:80 HTTP/1.1\r\nHost: world:80\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the silent tunnel was not closed within 5 s");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    let m = mesh.a.metrics().await;
    let silent = "weft_tunnels_total{direction=\"outbound\",service=\"world\",carried=\"nothing\"}";
    assert_eq!(metric(&m, silent), Some(1.0), "{m}");
    let refused = "weft_responses_total{direction=\"outbound\",service=\"_unknown\",endpoint=\"\",status_code=\"403\",classification=\"failure\",error=\"egress denied\"}";
    assert_eq!(metric(&m, refused), Some(1.0), "{m}");
}

/// A service whose discovery says its ports is reached through a tunnel on those only.
#[tokio::test]
async fn a_tunnel_reaches_only_the_ports_its_service_has() {
    let mesh = Mesh::start().await;
    let text = discovery::render(&[("world", vec![mesh.on_b(mesh.world.addr)])]);
    let text = text.replacen(
        "[services.\"world\"]\n",
        "[services.\"world\"]\nports = [80, 7778]\n",
        1,
    );
    discovery::write_raw(&mesh.discovery, &text);
    weft_tests::eventually("the ports in force", Duration::from_secs(5), || async {
        let (_, body) = mesh.a.admin_get("/endpoints").await;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["services"]["world"]["ports"] == serde_json::json!([80, 7778])).then_some(())
    })
    .await;
    let connect = b"CONNECT world:81 HTTP/1.1\r\nHost: world:81\r\n\r\n";
    let refused = exchange(mesh.a.outbound, connect).await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(
        refused
            .to_ascii_lowercase()
            .contains("weft-error: no such port"),
        "{refused}"
    );
    for port in [80, 7778] {
        let url = format!("http://world:{port}/echo");
        let rsp = curl(&["-p", "-x", &mesh.proxy_flag(), &url]).await;
        assert_eq!(rsp.status, 200, "port {port}: {}", rsp.raw_head);
    }
    assert_eq!(mesh.world.count(), 2);
}

/// A routed service's TLS cannot be matched on path or headers: it goes to a backend of
/// the rule that takes every request, drawn by weight.
#[tokio::test]
async fn tls_to_a_routed_service_goes_to_its_catch_all_rules_backend() {
    let mesh = Mesh::start().await;
    let dir = TempDir::new("tls-routed");
    let folder = dir.path("").to_string_lossy().into_owned();
    let (_server, port) = python::serve("tunnel_peers.py", &["tls-serve", NODE_B, &folder]).await;
    let addr = format!("{NODE_B}:{port}").parse().unwrap();
    let text = format!(
        "{}[[services.secure.routes]]\nname = \"all\"\nbackends = [{{ service = \"secure-v2\" }}]\n",
        weft_tests::discovery::render(&[("secure", vec![]), ("secure-v2", vec![mesh.on_b(addr)])])
    );
    weft_tests::discovery::write_raw(&mesh.discovery, &text);
    mesh.a.wait_for("secure-v2", &[mesh.on_b(addr)], true).await;
    let url = format!("https://secure:{port}/");
    let rsp = weft_tests::eventually(
        "the TLS relayed to secure-v2",
        Duration::from_secs(10),
        || async {
            let rsp = curl(&["-k", "-x", &mesh.proxy_flag(), &url]).await;
            (rsp.status == 200).then_some(rsp)
        },
    )
    .await;
    assert_eq!(rsp.text(), format!("tls hello from {port}\n"));
}
