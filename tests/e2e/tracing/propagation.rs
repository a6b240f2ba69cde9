//! The context through every hop: one trace over both hops of hello → world for W3C, B3
//! and no context, written onward in the form it came in; malformed context ignored.
use std::time::Duration;

use weft_tests::client::Reply;
use weft_tests::demo::Demo;
use weft_tests::mesh::Mesh;
use weft_tests::otlp::Collector;

use super::{assert_chain, config, one, via, CLIENT, INTERNAL, SERVER};

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

/// The context goes on in the form it came in, a malformed one is ignored (a new root,
/// never an error), and the request keeps (or is given) its id.
#[tokio::test]
async fn context_is_written_onward_in_its_own_form_and_bad_context_starts_a_new_trace() {
    let collector = Collector::start().await;
    let mesh = Mesh::with_config(&config(&collector.addr.to_string(), 1.0, "0s")).await;
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
