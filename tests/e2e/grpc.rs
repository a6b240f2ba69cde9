//! gRPC through both hops with a real grpcio client and server: unary, interleaved
//! bidirectional streaming, and a non-zero `grpc-status` arriving intact.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use weft_tests::discovery::Ep;
use weft_tests::mesh::{Mesh, NODE_B};
use weft_tests::proxy::metric;

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("support/grpc_peer.py")
}

#[tokio::test]
async fn grpc_unary_streaming_and_status_cross_both_hops() {
    let mesh = Mesh::start().await;
    let mut server = tokio::process::Command::new("python3")
        .arg(script())
        .args(["serve", NODE_B])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 with grpcio (the test command installs it)");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let port: u16 = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .expect("grpc server starts")
        .unwrap()
        .expect("grpc server prints its port")
        .trim()
        .parse()
        .unwrap();
    let grpc_addr = format!("{NODE_B}:{port}").parse().unwrap();
    mesh.publish(&[("world", vec![Ep::on(grpc_addr, mesh.b.inbound).h2()])])
        .await;

    let out = tokio::process::Command::new("python3")
        .arg(script())
        .args(["client", &mesh.a.outbound.to_string(), "world"])
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["unary"], "echo:hi");
    assert_eq!(
        v["bidi"],
        serde_json::json!(["echo:m0", "echo:m1", "echo:m2", "echo:m3", "echo:m4"])
    );
    assert_eq!(v["fail"], serde_json::json!(["NOT_FOUND", "no such thing"]));

    // The failed call is a failure in metrics even though its HTTP status was 200.
    let m = mesh.a.metrics().await;
    let route = format!("direction=\"outbound\",service=\"world\",endpoint=\"{grpc_addr}\"");
    let failures = metric(&m, &format!("weft_responses_total{{{route},status_code=\"200\",classification=\"failure\",error=\"\"}}"));
    assert_eq!(failures, Some(1.0), "{m}");
    let successes = metric(&m, &format!("weft_responses_total{{{route},status_code=\"200\",classification=\"success\",error=\"\"}}"));
    assert_eq!(successes, Some(2.0), "{m}");
    let _ = server.kill().await;
}
