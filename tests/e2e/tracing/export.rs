//! Spans on their way out: a collector that is down, a proxy that drains, the ingress's own
//! decisions and ids, and the latency exemplars the dashboard links to traces.
use std::time::Duration;

use weft_tests::client::curl;
use weft_tests::demo::Demo;
use weft_tests::mesh::Mesh;
use weft_tests::otlp::Collector;

use super::{children, config, one, via, INTERNAL};

#[tokio::test]
async fn with_the_collector_down_requests_succeed_and_dropped_spans_are_counted() {
    // A port held and never listened on: connections to it are refused, and no other
    // test's collector can take it meanwhile.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let down = held.local_addr().unwrap();
    let mesh = Mesh::with_config(&config(&down.to_string(), 1.0, "0s")).await;
    let proxy = mesh.proxy_flag();
    for _ in 0..30 {
        let rsp = via(&proxy, "http://world/", &[]).await;
        assert_eq!(rsp.status, 200, "{}", rsp.text());
    }
    let series = "weft_trace_spans_total{outcome=\"export failed\"}";
    let failed = weft_tests::eventually(
        "spans counted as not exported",
        Duration::from_secs(10),
        || async { mesh.a.sample(series).await.filter(|n| *n >= 60.0) },
    )
    .await;
    assert!(failed >= 60.0);
    assert_eq!(
        mesh.a
            .sample("weft_trace_spans_total{outcome=\"exported\"}")
            .await,
        Some(0.0)
    );
}

/// A proxy that drains sends the spans it still holds before it exits, however far off its
/// next batch was.
#[tokio::test]
async fn a_draining_proxy_exports_the_spans_it_holds_before_it_exits() {
    let collector = Collector::start().await;
    let config = format!(
        "[tracing]\notlp = \"{}\"\nsample_rate = 1.0\nbatch_interval = \"60s\"\n",
        collector.addr
    );
    let mut mesh = Mesh::with_config(&config).await;
    let trace = "d0000000000000000000000000000001";
    let w3c = format!("traceparent: 00-{trace}-3333333333333333-01");
    let rsp = via(&mesh.proxy_flag(), "http://world/", &[&w3c]).await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(collector.trace(trace, 1, Duration::ZERO).await.is_empty());
    mesh.a.sigterm();
    let status = mesh.a.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
    let spans = collector.trace(trace, 2, Duration::ZERO).await;
    let a = one(&spans, INTERNAL, "world");
    assert_eq!(children(&spans, a).len(), 1, "{spans:#?}");
}

/// At the ingress an outside caller's trace is joined, but its sampling decision is not
/// the mesh's: the head rate decides. The request gets an id of the ingress's own, and the
/// access log names both.
#[tokio::test]
async fn the_ingress_joins_an_outside_trace_but_makes_its_own_sampling_decision_and_id() {
    let collector = Collector::start().await;
    let mesh = Mesh::start().await;
    let log = mesh.dir.path("access.log");
    let config = mesh.dir.path("ingress.toml");
    let text = format!(
        "[ingress]\naccess_log = \"{}\"\n[[ingress.hosts]]\nnames = [\"*\"]\n\
         [[ingress.hosts.routes]]\nname = \"all\"\nbackends = [{{ service = \"world\" }}]\n\
         [tracing]\notlp = \"{}\"\nsample_rate = 0.0\nbatch_interval = \"200ms\"\n",
        log.display(),
        collector.addr
    );
    std::fs::write(&config, text).unwrap();
    let ingress = weft_tests::proxy::WeftProxy::start_with(
        "127.0.0.6",
        &mesh.discovery,
        &[
            "--config",
            config.to_str().unwrap(),
            "--ingress",
            "127.0.0.6:0",
        ],
    )
    .await;
    ingress
        .wait_for("world", &[mesh.on_b(mesh.world.addr)], true)
        .await;
    let addr = ingress.ingress.expect("the ingress listener");
    let trace = "e0000000000000000000000000000001";
    let rsp = curl(&[
        "-H",
        &format!("traceparent: 00-{trace}-4444444444444444-01"),
        "-H",
        "weft-request-id: forged",
        &format!("http://{addr}/echo"),
    ])
    .await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    let echo: serde_json::Value = serde_json::from_slice(&rsp.body).unwrap();
    let onward = echo["headers"]["traceparent"][0].as_str().unwrap();
    assert!(onward.starts_with(&format!("00-{trace}-")), "{onward}");
    assert!(
        onward.ends_with("-00"),
        "the caller's flag is not the mesh's: {onward}"
    );
    let id = echo["headers"]["weft-request-id"][0].as_str().unwrap();
    assert_ne!(id, "forged");
    let line = weft_tests::eventually("the access log line", Duration::from_secs(5), || async {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.ends_with('\n'))
    })
    .await;
    let entry: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(entry["request_id"], id, "{entry}");
    assert_eq!(entry["trace_id"], trace, "{entry}");
    // Not sampled, and nothing failed or was slow: no spans.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(collector.trace(trace, 1, Duration::ZERO).await.is_empty());
}

/// The latency histogram carries kept traces as OpenMetrics exemplars, and the dashboard
/// lists each service's slowest recent requests with links to their traces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_links_the_slowest_recent_requests_to_their_traces() {
    let collector = Collector::start().await;
    let otlp = collector.addr.to_string();
    let template = "http://traces.example/trace/{trace_id}";
    let args = [
        "--rps",
        "10",
        "--scrape-interval",
        "1s",
        "--otlp",
        &otlp,
        "--trace-sample-rate",
        "1",
        "--trace-url",
        template,
    ];
    let demo = Demo::start(21, &args).await;
    // A proxy's exposition, as Prometheus and the dashboard ask for it.
    let admin = demo.nodes[0].admin;
    weft_tests::eventually("a latency exemplar", Duration::from_secs(20), || async {
        let om = curl(&[
            "-H",
            "Accept: application/openmetrics-text; version=1.0.0",
            &format!("http://{admin}/metrics"),
        ])
        .await
        .text();
        om.lines()
            .any(|l| {
                l.starts_with("weft_response_latency_seconds_bucket")
                    && l.contains(" # {trace_id=\"")
            })
            .then_some(())
    })
    .await;
    let rows = weft_tests::eventually(
        "hello's slowest requests",
        Duration::from_secs(20),
        || async {
            let t = demo.api("/api/traces?service=hello").await;
            let rows = t["slowest"].as_array()?.clone();
            (!rows.is_empty()).then_some(rows)
        },
    )
    .await;
    assert!(rows.len() <= 5, "{rows:?}");
    let ms: Vec<f64> = rows
        .iter()
        .map(|r| r["latency_ms"].as_f64().unwrap())
        .collect();
    assert!(ms.windows(2).all(|w| w[0] >= w[1]), "slowest first: {ms:?}");
    for r in &rows {
        assert_eq!(r["service"], "hello");
        let id = r["trace_id"].as_str().unwrap();
        assert_eq!(r["url"], template.replace("{trace_id}", id));
        // A trace the collector has: the proxies exported the request the row names.
        let spans = collector.trace(id, 1, Duration::from_secs(10)).await;
        assert!(!spans.is_empty(), "no spans of {id}");
    }
    let browser = weft_tests::webdriver::Browser::start().await;
    browser.goto(&format!("http://{}/", demo.dashboard)).await;
    let links = browser
        .wait_for(
            "the slowest requests table",
            "const rows = '#slowest-table tbody tr[data-service=hello] td.trace a'; \
             const a = Array.from(document.querySelectorAll(rows)); \
             const shown = !document.getElementById('slowest').hidden; \
             return a.length > 0 && shown ? a.map(x => x.href) : null;",
        )
        .await;
    let links: Vec<&str> = links
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        links
            .iter()
            .all(|l| l.starts_with("http://traces.example/trace/")),
        "{links:?}"
    );
    browser
        .screenshot(&weft_tests::artifacts_dir().join("dashboard-traces.png"))
        .await;
    demo.stop().await;
}
