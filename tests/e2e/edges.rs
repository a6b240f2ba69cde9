//! The mesh's edges as real processes see them: requests that loop through the mesh are
//! stopped by the hop count, and staging overrides (`weft-ctx-override`) reroute a call
//! only when they come from a source the proxy trusts.
use weft_tests::backend::Backend;
use weft_tests::client::curl;
use weft_tests::demo::Demo;
use weft_tests::discovery::Ep;
use weft_tests::mesh::{Mesh, NODE_B};

/// `curl -x PROXY http://HOST/PATH` with extra headers: status, headers and body.
async fn via(proxy: &str, url: &str, headers: &[&str]) -> weft_tests::client::Reply {
    let mut args = vec!["-x", proxy, url];
    for h in headers {
        args.extend(["-H", h]);
    }
    curl(&args).await
}

/// A discovery entry that points a service back at a proxy's own outbound would send a
/// request round for ever; each hop counts itself in `weft-ctx-hops`, and the proxy that
/// would make hop 17 answers `508`, which travels back through the 16 before it.
#[tokio::test]
async fn a_service_pointed_back_at_a_proxy_is_answered_508_at_the_hop_limit() {
    let mesh = Mesh::start().await;
    let looping = vec![Ep::direct(mesh.a.outbound)];
    mesh.publish(&[
        ("world", vec![mesh.on_b(mesh.world.addr)]),
        ("loop", looping),
    ])
    .await;
    let proxy = mesh.proxy_flag();
    let rsp = via(&proxy, "http://loop/", &[]).await;
    // The proxy that found the loop said so; the ones it answered took the answer as an
    // app's (the hop back was to an "instance"), so only its status and body come back.
    assert_eq!(rsp.status, 508, "{}", rsp.text());
    assert!(rsp.text().contains("16 proxy hops"), "{}", rsp.text());
    // Not retried: each hop's retries would multiply the loop. The proxy saw the 16 hops and
    // answered the 17th itself, no more.
    let metrics = mesh.a.metrics().await;
    let sample = |series: &str| weft_tests::proxy::metric(&metrics, series);
    let ep = mesh.a.outbound;
    let attempts = format!("weft_attempts_total{{direction=\"outbound\",service=\"loop\",endpoint=\"{ep}\",classification=\"failure\"}}");
    assert_eq!(sample(&attempts), Some(16.0), "{metrics}");
    assert_eq!(
        sample("weft_retries_total{direction=\"outbound\",service=\"loop\"}"),
        Some(0.0)
    );
    let looped = sample(
        "weft_responses_total{direction=\"outbound\",service=\"loop\",endpoint=\"\",status_code=\"508\",classification=\"failure\",error=\"loop detected\"}",
    );
    assert_eq!(looped, Some(1.0), "{metrics}");

    // An app that forwards the count sends it on; the instance sees the hops so far.
    let rsp = via(&proxy, "http://world/echo", &["weft-ctx-hops: 3"]).await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    let echo: serde_json::Value = serde_json::from_slice(&rsp.body).unwrap();
    assert_eq!(echo["headers"]["weft-ctx-hops"][0], "4", "{echo}");
    // A count at the limit, or past anything a number holds, is a loop; garbage is a 400.
    for (hops, status, error) in [
        ("16", 508, "loop detected"),
        ("99999999999999999999999", 508, "loop detected"),
        ("three", 400, "bad request"),
    ] {
        let h = format!("weft-ctx-hops: {hops}");
        let rsp = via(&proxy, "http://world/echo", &[&h]).await;
        assert_eq!(rsp.status, status, "{hops}: {}", rsp.text());
        assert_eq!(rsp.header("weft-error"), Some(error), "{hops}");
    }
    assert_eq!(
        mesh.world.count(),
        1,
        "nothing past the limit reached the app"
    );
}

/// An app's override reroutes its call to the service it names, and to no address; a
/// malformed one is refused with a 400 before anything is sent. The override travels on to
/// the next node only if that node trusts the peer: in plaintext no peer is trusted, so
/// node B drops it and counts the drop, and world never sees it.
#[tokio::test]
async fn an_apps_override_reroutes_its_call_and_an_untrusted_peers_is_dropped() {
    let mesh = Mesh::start().await;
    let staging = Backend::start(NODE_B).await;
    mesh.publish(&[
        ("world", vec![mesh.on_b(mesh.world.addr)]),
        ("world-v2", vec![mesh.on_b(staging.addr)]),
    ])
    .await;
    let proxy = mesh.proxy_flag();
    let rsp = via(
        &proxy,
        "http://world/echo",
        &["weft-ctx-override: world => world-v2"],
    )
    .await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    assert_eq!(
        rsp.header("x-backend"),
        Some(staging.addr.to_string().as_str())
    );
    // Node B got it from a plaintext peer: the app behind it never sees the override.
    let echo: serde_json::Value = serde_json::from_slice(&rsp.body).unwrap();
    assert!(echo["headers"].get("weft-ctx-override").is_none(), "{echo}");
    let dropped = "weft_context_headers_dropped_total{direction=\"inbound\",header=\"weft-ctx-override\",reason=\"untrusted peer\"}";
    assert_eq!(mesh.b.sample(dropped).await, Some(1.0));
    assert!(mesh.b.log().contains("dropped a weft-ctx-override"));

    // One that names another service leaves this call alone.
    let rsp = via(
        &proxy,
        "http://world/",
        &["weft-ctx-override: hello => hello-v2"],
    )
    .await;
    assert_eq!(
        rsp.header("x-backend"),
        Some(mesh.world.addr.to_string().as_str())
    );

    let before = (mesh.world.count(), staging.count());
    for bad in [
        "world => 127.0.0.1:9",
        "world => evil.example:443",
        "world",
        "world => no-such-service",
    ] {
        let h = format!("weft-ctx-override: {bad}");
        let rsp = via(&proxy, "http://world/", &[&h]).await;
        assert_eq!(rsp.status, 400, "{bad}: {}", rsp.text());
        assert_eq!(rsp.header("weft-error"), Some("bad override"), "{bad}");
    }
    let long = format!("weft-ctx-override: world => {}", "w".repeat(600));
    let rsp = via(&proxy, "http://world/", &[&long]).await;
    assert_eq!(rsp.status, 400, "{}", rsp.text());
    assert_eq!((mesh.world.count(), staging.count()), before);
}

/// In the demo (mutual TLS between its proxies, each trusting the others' overrides), an
/// override sent to hello reaches world-v2 two hops down: hello's app forwards the
/// `weft-ctx-*` headers, and its proxy honours what its node's app sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_reaches_world_v2_two_hops_down() {
    let demo = Demo::start(18, &["--rps", "0", "--world-v2"]).await;
    let one = &demo.nodes[0];
    let proxy = one.outbound.to_string();
    let override_ = "weft-ctx-override: world => world-v2";
    let mut v2 = 0;
    for _ in 0..10 {
        let rsp = via(&proxy, "http://hello/", &[override_]).await;
        assert_eq!(rsp.status, 200, "{}", rsp.text());
        v2 += usize::from(rsp.text().contains("world v2"));
    }
    assert_eq!(v2, 10, "every call reached world-v2");
    // Without it, world's route sends everything to world-v1.
    let rsp = via(&proxy, "http://hello/", &[]).await;
    assert!(!rsp.text().contains("world v2"), "{}", rsp.text());

    let status = demo.stop().await;
    assert!(status.success(), "{status:?}");
}
