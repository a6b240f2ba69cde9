//! `/metrics` counts exactly what happened, per service and endpoint, on both sides, and
//! passes `promtool check metrics`.

use std::net::SocketAddr;

use weft_tests::backend::Backend;
use weft_tests::client::{curl, have};
use weft_tests::discovery::Ep;
use weft_tests::mesh::{Mesh, NODE_B};
use weft_tests::proxy::metric;

#[tokio::test]
async fn metrics_count_a_known_mix_exactly() {
    let mesh = Mesh::start().await;
    let dead: SocketAddr = weft_tests::free_addr(NODE_B);
    let second = Backend::start(NODE_B).await;
    mesh.publish(&[
        ("world", vec![mesh.on_b(mesh.world.addr)]),
        ("other", vec![mesh.on_b(second.addr)]),
        ("dead", vec![Ep::direct(dead)]),
    ])
    .await;
    let proxy = mesh.proxy_flag();
    let mix = [("/status/200", 5), ("/status/404", 3), ("/status/500", 2)];
    for (path, n) in mix {
        for _ in 0..n {
            curl(&["-x", &proxy, &format!("http://world{path}")]).await;
        }
    }
    for _ in 0..4 {
        curl(&["-x", &proxy, "http://other/status/201"]).await;
    }
    for _ in 0..2 {
        let rsp = curl(&["-x", &proxy, "http://dead/"]).await;
        assert_eq!(rsp.status, 502);
    }
    // The dead endpoint is tried 3 times per request (connect failures always retry).
    curl(&["-x", &proxy, "http://stranger/"]).await;

    let out = mesh.a.metrics().await;
    let ep = mesh.world.addr;
    let series =
        |labels: &str| metric(&out, labels).unwrap_or_else(|| panic!("{labels} missing:\n{out}"));
    let route = format!("direction=\"outbound\",service=\"world\",endpoint=\"{ep}\"");
    assert_eq!(series(&format!("weft_requests_total{{{route}}}")), 10.0);
    let resp = |code: &str, class: &str| {
        series(&format!("weft_responses_total{{{route},status_code=\"{code}\",classification=\"{class}\",error=\"\"}}"))
    };
    assert_eq!(resp("200", "success"), 5.0);
    assert_eq!(resp("404", "success"), 3.0);
    assert_eq!(resp("500", "failure"), 2.0);
    assert_eq!(
        series(&format!("weft_response_latency_seconds_count{{{route}}}")),
        10.0
    );
    let other = format!(
        "direction=\"outbound\",service=\"other\",endpoint=\"{}\"",
        second.addr
    );
    assert_eq!(series(&format!("weft_requests_total{{{other}}}")), 4.0);
    let dead_route = format!("direction=\"outbound\",service=\"dead\",endpoint=\"{dead}\"");
    assert_eq!(series(&format!("weft_requests_total{{{dead_route}}}")), 2.0);
    assert_eq!(
        series(&format!(
            "weft_responses_total{{{dead_route},status_code=\"502\",classification=\"failure\",error=\"connect refused\"}}"
        )),
        2.0
    );
    // Unknown names share one bounded series.
    assert_eq!(
        series("weft_requests_total{direction=\"outbound\",service=\"_unknown\",endpoint=\"\"}"),
        1.0
    );
    assert!(!out.contains("stranger"));

    // What was sent: each 500 on a GET was retried twice (the default), within budget.
    let attempts = |class: &str| {
        series(&format!(
            "weft_attempts_total{{{route},classification=\"{class}\"}}"
        ))
    };
    assert_eq!(attempts("failure"), 6.0);
    assert_eq!(attempts("success"), 8.0);
    assert_eq!(
        series("weft_retries_total{direction=\"outbound\",service=\"world\"}"),
        4.0
    );
    // A dead endpoint is tried again too: connect failures are always safe to retry.
    let dead_attempts = format!("weft_attempts_total{{{dead_route},classification=\"failure\"}}");
    assert_eq!(series(&dead_attempts), 6.0);
    // Each retry is counted against the endpoint whose failed attempt led to it; one that
    // never failed counts none, and nothing was refused.
    let endpoint_retries = |route: &str| series(&format!("weft_endpoint_retries_total{{{route}}}"));
    assert_eq!(endpoint_retries(&route), 4.0);
    assert_eq!(endpoint_retries(&dead_route), 4.0);
    assert_eq!(endpoint_retries(&other), 0.0);
    assert_eq!(
        series(&format!(
            "weft_endpoint_retry_budget_exhausted_total{{{dead_route}}}"
        )),
        0.0
    );

    // The inbound side on node B saw every attempt, per local instance.
    let inb = mesh.b.metrics().await;
    let inroute = format!("direction=\"inbound\",service=\"world\",endpoint=\"{ep}\"");
    assert_eq!(
        metric(&inb, &format!("weft_requests_total{{{inroute}}}")),
        Some(14.0),
        "{inb}"
    );
    assert_eq!(
        metric(&inb, &format!("weft_responses_total{{{inroute},status_code=\"500\",classification=\"failure\",error=\"\"}}")),
        Some(6.0)
    );

    assert!(
        have("promtool"),
        "promtool is missing: the test command installs the prometheus package"
    );
    for text in [out, inb] {
        let mut child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let res = child.wait_with_output().unwrap();
        let complaints = format!(
            "{}{}",
            String::from_utf8_lossy(&res.stdout),
            String::from_utf8_lossy(&res.stderr)
        );
        assert!(
            res.status.success() && complaints.trim().is_empty(),
            "promtool: {complaints}"
        );
    }
}
