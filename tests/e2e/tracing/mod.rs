//! Distributed tracing through real proxies, exported to a real OTLP collector (built in
//! the test from the OpenTelemetry protos): the spans of every proxy on both hops of hello
//! → world form one trace whatever form the caller's context came in, and the context goes
//! on in its own form ([`propagation`]); failed, slow and given-up requests are kept at a
//! head rate of 0, and a proxy below that kept a trace makes the proxy above keep its
//! spans ([`keeping`]); a collector that is down costs only dropped spans, a draining proxy
//! sends what it holds, the ingress makes its own decisions, and the dashboard links the
//! slowest requests to their traces ([`export`]).
use weft_tests::client::{curl, Reply};
use weft_tests::otlp::Got;

mod export;
mod keeping;
mod propagation;

pub(crate) const INTERNAL: i32 = 1;
pub(crate) const SERVER: i32 = 2;
pub(crate) const CLIENT: i32 = 3;

pub(crate) async fn via(proxy: &str, url: &str, headers: &[&str]) -> Reply {
    let mut args = vec!["-x", proxy, url];
    for h in headers {
        args.extend(["-H", h]);
    }
    curl(&args).await
}

pub(crate) fn one<'a>(spans: &'a [Got], kind: i32, service: &str) -> &'a Got {
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

pub(crate) fn children<'a>(spans: &'a [Got], parent: &Got) -> Vec<&'a Got> {
    spans
        .iter()
        .filter(|g| g.kind() == CLIENT && g.parent_hex() == parent.id_hex())
        .collect()
}

/// hello → world through the demo's proxies, as one trace: the first outbound's request
/// span under the caller's span (`caller`, or none), an attempt under it, hello's inbound
/// server span under that attempt; then, as hello forwarded the context, the outbound's
/// span for world under hello's server span, its attempt, and world's server span.
pub(crate) fn assert_chain(spans: &[Got], caller: &str) {
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

/// A mesh config with tracing to `otlp` at `sample_rate`, batches every 200 ms, and no
/// request kept for being slow unless `keep_slower_than` says (a loaded machine must not
/// turn a quick request into a slow one).
pub(crate) fn config(otlp: &str, sample_rate: f64, keep_slower_than: &str) -> String {
    format!(
        "[tracing]\notlp = \"{otlp}\"\nsample_rate = {sample_rate}\nbatch_interval = \"200ms\"\n\
         export_timeout = \"1s\"\nkeep_slower_than = \"{keep_slower_than}\"\n"
    )
}
