//! Tail keeping: what is kept though not sampled (failed, slow, given up), and the mark that
//! makes the proxy above keep its spans too.
use std::time::Duration;

use weft_tests::mesh::Mesh;
use weft_tests::otlp::Collector;

use super::{children, config, one, via, INTERNAL, SERVER};

/// A request whose first attempt failed at a world instance and whose retry succeeded:
/// node B's proxy keeps its failed span and says so on the response, and node A's
/// proxy, whose request succeeded, keeps its spans too. A request nothing failed in is
/// not exported at a head rate of 0.
#[tokio::test]
async fn a_proxy_below_that_keeps_a_trace_makes_the_proxy_above_keep_its_spans() {
    let collector = Collector::start().await;
    let mesh = Mesh::with_config(&config(&collector.addr.to_string(), 0.0, "0s")).await;
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
    let mesh = Mesh::with_config(&config(&collector.addr.to_string(), 0.0, "1s")).await;
    let proxy = mesh.proxy_flag();
    let (slow, quick) = (
        "5100000000000000000000000000000a",
        "5100000000000000000000000000000b",
    );
    for (trace, path) in [(slow, "/slow?ms=2500"), (quick, "/echo")] {
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
    assert!(took >= 2_500_000_000, "{took} ns");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let exported = collector.trace(quick, 1, Duration::ZERO).await;
    assert!(exported.is_empty(), "{exported:#?}");
}

/// A request its client gives up on (curl's own timeout, before any answer) is failed and
/// kept by both proxies, at a head rate of 0: the outbound's spans end when the app goes,
/// the inbound's when the hop's stream is reset, the unanswered attempt failed.
#[tokio::test]
async fn a_request_given_up_before_its_answer_is_kept_by_every_proxy_it_reached() {
    let collector = Collector::start().await;
    let mesh = Mesh::with_config(&config(&collector.addr.to_string(), 0.0, "0s")).await;
    let trace = "6000000000000000000000000000000c";
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "1", "-x", &mesh.proxy_flag()])
        .args([
            "-H",
            &format!("traceparent: 00-{trace}-5555555555555555-00"),
        ])
        .arg("http://world/hang")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "curl gave up");
    let spans = collector.trace(trace, 3, Duration::from_secs(10)).await;
    let a = one(&spans, INTERNAL, "world");
    assert_eq!(
        a.attr("weft.error").as_deref(),
        Some("client aborted"),
        "{spans:#?}"
    );
    assert_eq!(a.span.status.as_ref().map(|s| s.code), Some(2));
    let tries = children(&spans, a);
    assert_eq!(tries.len(), 1, "{spans:#?}");
    assert_eq!(
        tries[0].span.status.as_ref().map(|s| s.code),
        Some(2),
        "{spans:#?}"
    );
    let b = one(&spans, SERVER, "world");
    assert_eq!(b.parent_hex(), tries[0].id_hex());
    assert_eq!(b.attr("weft.trace.kept").as_deref(), Some("failed"));
}
