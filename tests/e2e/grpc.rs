//! gRPC through both hops with a real grpcio client and server: unary, interleaved
//! bidirectional streaming, and a non-zero `grpc-status` arriving intact; by a client that
//! addresses the proxy itself, and by one that has only `http_proxy` set (and tunnels).

use std::net::SocketAddr;

use weft_tests::discovery::Ep;
use weft_tests::mesh::{Mesh, NODE_B};
use weft_tests::proxy::metric;
use weft_tests::python;

/// A grpcio server on node B, published as `world`.
async fn grpc_world(mesh: &Mesh) -> (tokio::process::Child, SocketAddr) {
    let (server, port) = python::serve("grpc_peer.py", &["serve", NODE_B]).await;
    let addr: SocketAddr = format!("{NODE_B}:{port}").parse().unwrap();
    mesh.publish(&[("world", vec![Ep::on(addr, mesh.b.inbound).h2()])])
        .await;
    (server, addr)
}

/// The client's results are the calls' real outcomes, and the proxy counted them per
/// service and endpoint, the failed call (HTTP 200, grpc-status 5) as a failure.
async fn assert_calls(mesh: &Mesh, stdout: &str, grpc_addr: SocketAddr) {
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["unary"], "echo:hi");
    assert_eq!(
        v["bidi"],
        serde_json::json!(["echo:m0", "echo:m1", "echo:m2", "echo:m3", "echo:m4"])
    );
    assert_eq!(v["fail"], serde_json::json!(["NOT_FOUND", "no such thing"]));
    let m = mesh.a.metrics().await;
    let route = format!("direction=\"outbound\",service=\"world\",endpoint=\"{grpc_addr}\"");
    let failures = metric(&m, &format!("weft_responses_total{{{route},status_code=\"200\",classification=\"failure\",error=\"\"}}"));
    assert_eq!(failures, Some(1.0), "{m}");
    let successes = metric(&m, &format!("weft_responses_total{{{route},status_code=\"200\",classification=\"success\",error=\"\"}}"));
    assert_eq!(successes, Some(2.0), "{m}");
}

#[tokio::test]
async fn grpc_unary_streaming_and_status_cross_both_hops() {
    let mesh = Mesh::start().await;
    let (_server, grpc_addr) = grpc_world(&mesh).await;
    let proxy = mesh.a.outbound.to_string();
    let stdout = python::run("grpc_peer.py", &["client", &proxy, "world"]).await;
    assert_calls(&mesh, &stdout, grpc_addr).await;
}

/// The way apps are wired in the mesh: only `http_proxy` set. grpcio then opens a CONNECT
/// tunnel to `world:PORT` and speaks HTTP/2 inside it; every call is served like any other.
#[tokio::test]
async fn a_grpc_client_with_only_http_proxy_reaches_the_mesh_through_a_tunnel() {
    let mesh = Mesh::start().await;
    let (_server, grpc_addr) = grpc_world(&mesh).await;
    let proxy = mesh.a.outbound.to_string();
    let target = format!("world:{}", grpc_addr.port());
    let stdout = python::run("grpc_peer.py", &["proxied", &proxy, &target]).await;
    assert_calls(&mesh, &stdout, grpc_addr).await;
    let m = mesh.a.metrics().await;
    let tunnels = "weft_tunnels_total{direction=\"outbound\",service=\"world\",carried=\"http\"}";
    assert!(metric(&m, tunnels).is_some_and(|n| n >= 1.0), "{m}");
}
