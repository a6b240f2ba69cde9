//! Limits and hostile input: a control plane that caps its Destination streams, and a proxy
//! that answers HTTP/2 abuse by closing the abuser's connection while everyone else is
//! served.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use weft_tests::control::WeftControl;
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
