//! Distributed tracing through real proxies, exported to a real OTLP collector: the spans
//! of every proxy on both hops of hello → world form one trace whatever form the caller's
//! context came in; failed requests are kept at a head rate of 0, and a proxy below that
//! kept a trace makes the proxy above keep its spans too; a collector that is down costs
//! only dropped spans, counted.
use std::time::Duration;

use weft_tests::client::{curl, Reply};
use weft_tests::demo::Demo;
use weft_tests::mesh::Mesh;
use weft_tests::otlp::{Collector, Got};

const INTERNAL: i32 = 1;
const SERVER: i32 = 2;
const CLIENT: i32 = 3;

async fn via(proxy: &str, url: &str, headers: &[&str]) -> Reply {
    let mut args = vec!["-x", proxy, url];
    for h in headers {
        args.extend(["-H", h]);
    }
    curl(&args).await
}

fn one<'a>(spans: &'a [Got], kind: i32, service: &str) -> &'a Got {
    let found: Vec<&Got> = spans
        .iter()
        .filter(|g| g.kind() == kind && g.attr("weft.service").as_deref() == Some(service))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one kind-{kind} span of {service}: {spans:#?}"
    );
    found[0]
}

fn children<'a>(spans: &'a [Got], parent: &Got) -> Vec<&'a Got> {
    spans
        .iter()
        .filter(|g| g.kind() == CLIENT && g.parent_hex() == parent.id_hex())
        .collect()
}

/// hello → world through the demo's proxies, as one trace: the first outbound's request
/// span under the caller's span (`caller`, or none), an attempt under it, hello's inbound
/// server span under that attempt; then, as hello forwarded the context, the outbound's
/// span for world under hello's server span, its attempt, and world's server span.
fn assert_chain(spans: &[Got], caller: &str) {
    let hello_out = one(spans, INTERNAL, "hello");
    assert_eq!(hello_out.parent_hex(), caller, "{hello_out:#?}");
    assert_eq!(
        hello_out.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        hello_out.attr("http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        hello_out.attr("weft.direction").as_deref(),
        Some("outbound")
    );
    assert!(
        hello_out.attr("weft.request_id").is_some(),
        "{hello_out:#?}"
    );
    let hello_tries = children(spans, hello_out);
    assert_eq!(hello_tries.len(), 1, "{spans:#?}");
    assert!(hello_tries[0].attr("weft.endpoint").is_some());
    let hello_in = one(spans, SERVER, "hello");
    assert_eq!(hello_in.parent_hex(), hello_tries[0].id_hex());
    assert_eq!(hello_in.attr("weft.direction").as_deref(), Some("inbound"));
    // Between the demo's proxies the hop is mutual TLS: the peer is a proxy's identity.
    let peer = hello_in.attr("weft.peer.identity").unwrap_or_default();
    assert!(peer.starts_with("spiffe://"), "{hello_in:#?}");
    let world_out = one(spans, INTERNAL, "world");
    assert_eq!(world_out.parent_hex(), hello_in.id_hex(), "{spans:#?}");
    let world_tries = children(spans, world_out);
    assert_eq!(world_tries.len(), 1, "{spans:#?}");
    let world_in = one(spans, SERVER, "world");
    assert_eq!(world_in.parent_hex(), world_tries[0].id_hex());
    assert_eq!(
        world_in.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(spans.len(), 6, "{spans:#?}");
    // Each proxy's spans say which node made them; hello's outbound is the first node's.
    assert_eq!(hello_out.node, "node-1");
}

#[tokio::test]
async fn spans_of_every_proxy_on_both_hops_form_one_trace_for_w3c_b3_and_no_context() {
    let collector = Collector::start().await;
    let otlp = collector.addr.to_string();
    let args = ["--rps", "0", "--otlp", &otlp, "--trace-sample-rate", "1"];
    let demo = Demo::start(19, &args).await;
    let proxy = demo.curl_proxy.clone();
    let wait = Duration::from_secs(15);

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let w3c = format!("traceparent: 00-{trace}-{caller}-01");
    let rsp = via(
        &proxy,
        "http://hello/",
        &[&w3c, "tracestate: vendor=opaque"],
    )
    .await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    assert_chain(&collector.trace(trace, 6, wait).await, caller);
    let spans = collector.trace(trace, 6, wait).await;
    assert!(
        spans.iter().all(|g| g.span.trace_state == "vendor=opaque"),
        "{spans:#?}"
    );

    let trace = "a3ce929d0e0e47364bf92f3577b34da6";
    let caller = "e457b5a2e4d86bd1";
    let b3 = format!("b3: {trace}-{caller}-1");
    let rsp = via(&proxy, "http://hello/", &[&b3]).await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    assert_chain(&collector.trace(trace, 6, wait).await, caller);

    // A 64-bit B3 trace id is the low half of the 128-bit one.
    let short = "463ac35c9f6413ad";
    let caller = "a2fb4a1d1a96d312";
    let headers = [
        format!("x-b3-traceid: {short}"),
        format!("x-b3-spanid: {caller}"),
        "x-b3-sampled: 1".to_string(),
    ];
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let rsp = via(&proxy, "http://hello/", &headers).await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    let trace = format!("0000000000000000{short}");
    assert_chain(&collector.trace(&trace, 6, wait).await, caller);

    // No context: the first proxy starts the trace; the request's id finds it.
    let rsp = via(
        &proxy,
        "http://hello/",
        &["weft-request-id: e2e-no-context"],
    )
    .await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    let root = weft_tests::eventually("the new trace's first span", wait, || async {
        collector
            .spans()
            .into_iter()
            .find(|g| g.attr("weft.request_id").as_deref() == Some("e2e-no-context"))
    })
    .await;
    let spans = collector.trace(&root.trace_hex(), 6, wait).await;
    assert_chain(&spans, "");
    // Every hop carried the request's id.
    assert!(
        spans
            .iter()
            .filter(|g| g.kind() != CLIENT)
            .all(|g| g.attr("weft.request_id").as_deref() == Some("e2e-no-context")),
        "{spans:#?}"
    );
    demo.stop().await;
}

#[tokio::test]
async fn a_failed_request_is_exported_at_a_head_rate_of_zero() {
    let collector = Collector::start().await;
    let otlp = collector.addr.to_string();
    let args = [
        "--rps",
        "0",
        "--otlp",
        &otlp,
        "--trace-sample-rate",
        "0",
        "--world-failure-rate",
        "1",
    ];
    let demo = Demo::start(20, &args).await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let caller = "b7ad6b7169203331";
    let w3c = format!("traceparent: 00-{trace}-{caller}-00");
    let rsp = via(&demo.curl_proxy, "http://hello/", &[&w3c]).await;
    assert!(rsp.status >= 500, "{} {}", rsp.status, rsp.text());
    let spans = collector.trace(trace, 6, Duration::from_secs(15)).await;
    let hello_out = one(&spans, INTERNAL, "hello");
    assert_eq!(hello_out.parent_hex(), caller);
    let world_in = one(&spans, SERVER, "world");
    assert_eq!(
        world_in.attr("http.response.status_code").as_deref(),
        Some("500")
    );
    assert_eq!(world_in.attr("weft.trace.kept").as_deref(), Some("failed"));
    // Not sampled: the spans carry the caller's flag.
    assert!(spans.iter().all(|g| g.span.flags & 1 == 0), "{spans:#?}");
    assert_eq!(world_in.span.status.as_ref().map(|s| s.code), Some(2));
    demo.stop().await;
}

fn config(otlp: &str, sample_rate: f64) -> String {
    format!(
        "[tracing]\notlp = \"{otlp}\"\nsample_rate = {sample_rate}\nbatch_interval = \"200ms\"\nexport_timeout = \"1s\"\n"
    )
}

/// A request whose first attempt failed at a world instance and whose retry succeeded:
/// node B's proxy keeps its failed span and says so on the response, and node A's
/// proxy, whose request succeeded, keeps its spans too. A request nothing failed in is
/// not exported at a head rate of 0.
#[tokio::test]
async fn a_proxy_below_that_keeps_a_trace_makes_the_proxy_above_keep_its_spans() {
    let collector = Collector::start().await;
    let mesh = Mesh::with_config(&config(&collector.addr.to_string(), 0.0)).await;
    let worlds = mesh.worlds(2).await;
    worlds[0].set_failing(true);
    let proxy = mesh.proxy_flag();
    let (mut retried, mut clean) = (None, None);
    for i in 0..40u32 {
        let trace = format!("{:032x}", 0x5eed_0000 + i);
        let w3c = format!("traceparent: 00-{trace}-1111111111111111-00");
        let failed_before = worlds[0].count();
        let rsp = via(&proxy, "http://world/echo", &[&w3c]).await;
        assert_eq!(rsp.status, 200, "{}", rsp.text());
        if worlds[0].count() > failed_before {
            retried.get_or_insert(trace);
        } else {
            clean.get_or_insert(trace);
        }
        if retried.is_some() && clean.is_some() {
            break;
        }
    }
    let (retried, clean) = (
        retried.expect("a retried request"),
        clean.expect("a clean one"),
    );
    let spans = collector.trace(&retried, 4, Duration::from_secs(10)).await;
    let a = one(&spans, INTERNAL, "world");
    assert_eq!(a.attr("http.response.status_code").as_deref(), Some("200"));
    assert_eq!(
        a.attr("weft.trace.kept").as_deref(),
        Some("downstream"),
        "{spans:#?}"
    );
    let tries = children(&spans, a);
    assert_eq!(tries.len(), 2, "{spans:#?}");
    assert_eq!(
        tries[1].attr("http.request.resend_count").as_deref(),
        Some("1")
    );
    let failed = spans
        .iter()
        .find(|g| {
            g.kind() == SERVER && g.attr("http.response.status_code").as_deref() == Some("500")
        })
        .unwrap_or_else(|| panic!("B's failed server span: {spans:#?}"));
    assert_eq!(failed.attr("weft.trace.kept").as_deref(), Some("failed"));
    assert!(
        tries.iter().any(|t| t.id_hex() == failed.parent_hex()),
        "{spans:#?}"
    );
    // Several batches later, nothing of the clean request.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let exported = collector.trace(&clean, 1, Duration::ZERO).await;
    assert!(exported.is_empty(), "{exported:#?}");
}

/// A request slower than `keep_slower_than` is kept by every proxy it passed, though not
/// sampled; a quick one beside it is not.
#[tokio::test]
async fn a_slow_request_is_exported_at_a_head_rate_of_zero() {
    let collector = Collector::start().await;
    let config = config(&collector.addr.to_string(), 0.0) + "keep_slower_than = \"150ms\"\n";
    let mesh = Mesh::with_config(&config).await;
    let proxy = mesh.proxy_flag();
    let (slow, quick) = (
        "5100000000000000000000000000000a",
        "5100000000000000000000000000000b",
    );
    for (trace, path) in [(slow, "/slow?ms=400"), (quick, "/echo")] {
        let w3c = format!("traceparent: 00-{trace}-2222222222222222-00");
        let rsp = via(&proxy, &format!("http://world{path}"), &[&w3c]).await;
        assert_eq!(rsp.status, 200, "{}", rsp.text());
    }
    let spans = collector.trace(slow, 3, Duration::from_secs(10)).await;
    let a = one(&spans, INTERNAL, "world");
    assert_eq!(
        a.attr("weft.trace.kept").as_deref(),
        Some("slow"),
        "{spans:#?}"
    );
    let b = one(&spans, SERVER, "world");
    assert_eq!(
        b.attr("weft.trace.kept").as_deref(),
        Some("slow"),
        "{spans:#?}"
    );
    let took = b.span.end_time_unix_nano - b.span.start_time_unix_nano;
    assert!(took >= 400_000_000, "{took} ns");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let exported = collector.trace(quick, 1, Duration::ZERO).await;
    assert!(exported.is_empty(), "{exported:#?}");
}

/// The context goes on in the form it came in, a malformed one is ignored (a new root,
/// never an error), and the request keeps (or is given) its id.
#[tokio::test]
async fn context_is_written_onward_in_its_own_form_and_bad_context_starts_a_new_trace() {
    let collector = Collector::start().await;
    let mesh = Mesh::with_config(&config(&collector.addr.to_string(), 1.0)).await;
    let proxy = mesh.proxy_flag();
    let echo = |rsp: &Reply| -> serde_json::Value {
        assert_eq!(rsp.status, 200, "{}", rsp.text());
        serde_json::from_slice(&rsp.body).unwrap()
    };
    let header = |echo: &serde_json::Value, name: &str| -> Option<String> {
        echo["headers"][name][0].as_str().map(str::to_owned)
    };

    // B3 single stays B3 single: same trace, B's server span as the parent, sampled.
    let trace = "80f198ee56343ba864fe8b2a57d3eff7";
    let rsp = via(
        &proxy,
        "http://world/echo",
        &[&format!("b3: {trace}-e457b5a2e4d86bd1-1")],
    )
    .await;
    let e = echo(&rsp);
    let b3 = header(&e, "b3").expect("b3 onward");
    let fields: Vec<&str> = b3.split('-').collect();
    assert_eq!(fields[0], trace, "{b3}");
    assert_ne!(fields[1], "e457b5a2e4d86bd1", "{b3}");
    assert_eq!(fields[2], "1", "{b3}");
    assert!(header(&e, "traceparent").is_none(), "{e}");
    let id = header(&e, "weft-request-id").expect("an id made at the first hop");
    assert_eq!(id.len(), 32, "{id}");

    // B3 multi, 64-bit: written back 64-bit, with the parent named.
    let rsp = via(
        &proxy,
        "http://world/echo",
        &[
            "x-b3-traceid: 463ac35c9f6413ad",
            "x-b3-spanid: a2fb4a1d1a96d312",
            "x-b3-sampled: 1",
            "weft-request-id: mine",
        ],
    )
    .await;
    let e = echo(&rsp);
    assert_eq!(
        header(&e, "x-b3-traceid").as_deref(),
        Some("463ac35c9f6413ad"),
        "{e}"
    );
    assert_eq!(header(&e, "x-b3-sampled").as_deref(), Some("1"), "{e}");
    assert!(header(&e, "x-b3-parentspanid").is_some(), "{e}");
    assert_eq!(
        header(&e, "weft-request-id").as_deref(),
        Some("mine"),
        "{e}"
    );

    // W3C, with its tracestate passed on unchanged.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let tp = format!("traceparent: 00-{trace}-00f067aa0ba902b7-01");
    let rsp = via(
        &proxy,
        "http://world/echo",
        &[&tp, "tracestate: congo=t61rcWkgMzE"],
    )
    .await;
    let e = echo(&rsp);
    let onward = header(&e, "traceparent").expect("traceparent onward");
    assert!(
        onward.starts_with(&format!("00-{trace}-")) && onward.ends_with("-01"),
        "{onward}"
    );
    assert_eq!(
        header(&e, "tracestate").as_deref(),
        Some("congo=t61rcWkgMzE")
    );

    // Malformed: a forbidden version, an all-zero id, bad lengths, a bad B3 flag; and a
    // tracestate past 512 bytes. Each is ignored: a new trace, and a 200.
    let long_state = format!("tracestate: k={}", "v".repeat(600));
    for bad in [
        vec![format!("traceparent: ff-{trace}-00f067aa0ba902b7-01")],
        vec!["traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01".into()],
        vec![format!("traceparent: 00-{trace}-00f067aa0ba902-01")],
        vec![format!("b3: {trace}-e457b5a2e4d86bd1-x")],
    ] {
        let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
        let e = echo(&via(&proxy, "http://world/echo", &bad).await);
        let onward = header(&e, "traceparent").expect("a new trace");
        assert!(
            onward.starts_with("00-") && !onward.contains(trace),
            "{bad:?}: {onward}"
        );
        assert!(header(&e, "b3").is_none(), "{e}");
    }
    let e = echo(&via(&proxy, "http://world/echo", &[&tp, &long_state]).await);
    assert!(header(&e, "traceparent").unwrap().contains(trace), "{e}");
    assert!(header(&e, "tracestate").is_none(), "{e}");
}

#[tokio::test]
async fn with_the_collector_down_requests_succeed_and_dropped_spans_are_counted() {
    // A port that was just free: nothing listens there.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mesh = Mesh::with_config(&config(&down.to_string(), 1.0)).await;
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
            "const a = Array.from(document.querySelectorAll('#slowest-table tbody tr[data-service=hello] td.trace a')); \
             return a.length > 0 && !document.getElementById('slowest').hidden ? a.map(x => x.href) : null;",
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
