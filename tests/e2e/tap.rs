//! Tap through real proxies: a subscriber gets exactly the requests its filter matches (on
//! the request and on the answer), with their fields; credentials never show; a filter
//! that cannot match is refused with its reason; a subscriber that stops reading is dropped
//! and told why, while traffic goes on.
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use weft_tests::backend::Backend;
use weft_tests::client::curl;
use weft_tests::load::Load;
use weft_tests::mesh::{Mesh, NODE_B};
use weft_tests::tap::{self, Tap};

const QUIET: Duration = Duration::from_millis(1500);

async fn via(mesh: &Mesh, method: &str, url: &str, headers: &[&str]) -> u16 {
    let proxy = mesh.proxy_flag();
    let mut args = vec!["-x", proxy.as_str(), "-X", method, url];
    for h in headers {
        args.extend(["-H", h]);
    }
    curl(&args).await.status
}

/// The request events of a stream, by request id, in order.
fn by_request(lines: &[Value]) -> BTreeMap<u64, Vec<&Value>> {
    let mut m: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for l in lines.iter().filter(|l| l["type"] != "subscribed") {
        m.entry(l["id"].as_u64().expect("an id"))
            .or_default()
            .push(l);
    }
    m
}

async fn subscribed(addr: std::net::SocketAddr, query: &str) -> Tap {
    let mut t = tap::subscribe(addr, &format!("/tap?{query}"))
        .await
        .unwrap_or_else(|(s, m)| panic!("tap refused: {s} {m}"));
    let first = t.next(QUIET).await.expect("the subscribed line");
    assert_eq!(first["type"], "subscribed", "{first}");
    t
}

#[tokio::test]
async fn a_tap_gets_exactly_the_requests_its_filter_matches() {
    let mesh = Mesh::start().await;
    let other = Backend::start(NODE_B).await;
    mesh.publish(&[
        ("world", vec![mesh.on_b(mesh.world.addr)]),
        ("other", vec![mesh.on_b(other.addr)]),
    ])
    .await;
    let mut get_a = subscribed(
        mesh.a.admin,
        "service=world&direction=outbound&method=GET&path=/a&rate=10000",
    )
    .await;
    let mut failed_in = subscribed(mesh.b.admin, "direction=inbound&status=5xx&rate=10000").await;
    // One request a second: a filter on the answer spends its rate only on the requests it
    // takes, so the successes before cannot use up what the failures need.
    let mut few_failed = subscribed(mesh.a.admin, "status=failure&rate=3").await;
    // The known mix: only the 4 GETs of world under /a match the first filter.
    for i in 0..4 {
        assert_eq!(
            via(&mesh, "GET", &format!("http://world/a/{i}"), &[]).await,
            200
        );
    }
    for (m, url) in [
        ("GET", "http://world/b"),
        ("POST", "http://world/a"),
        ("GET", "http://other/a"),
        ("GET", "http://world/"),
    ] {
        assert_eq!(via(&mesh, m, url, &[]).await, 200, "{m} {url}");
    }
    // Failing answers: B's inbound sees each attempt; only they match the second filter.
    let before = mesh.world.count();
    mesh.world.set_failing(true);
    for _ in 0..3 {
        // 500 from world, or 503 once failure accrual has taken it out.
        assert!(via(&mesh, "GET", "http://world/f", &[]).await >= 500);
    }
    mesh.world.set_failing(false);
    let failed_attempts = mesh.world.count() - before;

    let lines = get_a.until_quiet(QUIET).await;
    let reqs = by_request(&lines);
    assert_eq!(reqs.len(), 4, "{lines:#?}");
    for events in reqs.values() {
        let kinds: Vec<_> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["start", "headers", "end"], "{events:#?}");
        for e in events {
            assert_eq!(e["service"], "world");
            assert_eq!(e["method"], "GET");
            assert_eq!(e["direction"], "outbound");
            assert!(e["path"].as_str().unwrap().starts_with("/a/"), "{e}");
            assert!(e["source"].as_str().unwrap().starts_with("127."), "{e}");
        }
        let end = events[2];
        assert_eq!(end["status"], 200);
        assert_eq!(end["success"], true);
        assert_eq!(end["retries"], 0);
        assert_eq!(end["endpoint"], mesh.world.addr.to_string());
        assert!(end["latency_us"].as_u64().unwrap() <= end["duration_us"].as_u64().unwrap());
        assert!(end["bytes"].as_u64().unwrap() > 0, "{end}");
    }

    let lines = few_failed.until_quiet(QUIET).await;
    let reqs = by_request(&lines);
    assert!(
        !reqs.is_empty(),
        "a failure seen at one a second: {lines:#?}"
    );
    for events in reqs.values() {
        let end = events.last().unwrap();
        assert_eq!(end["type"], "end", "{events:#?}");
        assert_eq!(end["success"], false, "{events:#?}");
        assert_eq!(events.len(), 3, "{events:#?}");
    }

    let lines = failed_in.until_quiet(QUIET).await;
    let reqs = by_request(&lines);
    // Every attempt world failed (retries included) and nothing else.
    assert_eq!(reqs.len(), failed_attempts, "{lines:#?}");
    for events in reqs.values() {
        let kinds: Vec<_> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["start", "headers", "end"], "{events:#?}");
        assert_eq!(events[2]["status"], 500);
        assert_eq!(events[2]["success"], false);
        assert_eq!(events[2]["path"], "/f");
        assert_eq!(events[0]["direction"], "inbound");
    }
}

#[tokio::test]
async fn credentials_never_show_and_only_allowed_values_do() {
    let mesh = Mesh::with_config("[tap]\nshow_headers = [\"x-visible\"]\n").await;
    let mut t = subscribed(mesh.a.admin, "service=world").await;
    let status = via(
        &mesh,
        "GET",
        "http://world/s",
        &[
            "Authorization: Bearer SECRET-1",
            "Cookie: session=SECRET-2",
            "Proxy-Authorization: Basic SECRET-3",
            "X-Visible: shown",
            "X-Hidden: SECRET-4",
        ],
    )
    .await;
    assert_eq!(status, 200);
    let lines = t.until_quiet(QUIET).await;
    let text = serde_json::to_string(&lines).unwrap();
    assert!(!text.contains("SECRET"), "{text}");
    let start = lines.iter().find(|l| l["type"] == "start").expect("start");
    let headers: BTreeMap<String, Value> = start["request_headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].clone()))
        .collect();
    assert_eq!(headers["x-visible"], "shown", "{start}");
    for hidden in ["authorization", "cookie", "proxy-authorization", "x-hidden"] {
        assert_eq!(headers[hidden], Value::Null, "{hidden}: {start}");
    }

    // Config that would show a credential is refused, naming the file.
    let dir = weft_tests::TempDir::new("tap-config");
    let cfg = dir.path("proxy.toml");
    std::fs::write(&cfg, "[tap]\nshow_headers = [\"Set-Cookie\"]\n").unwrap();
    let out = tokio::process::Command::new(weft_tests::proxy::weft_bin())
        .args(["proxy", "--config", cfg.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("proxy.toml") && err.contains("never shown"),
        "{err}"
    );
}

#[tokio::test]
async fn a_filter_that_cannot_match_is_refused_with_its_reason() {
    let mesh = Mesh::start().await;
    for (query, status, says) in [
        ("status=6xx", 400, "1xx"),
        ("path=api", 400, "starts with /"),
        ("rate=0", 400, "1 to 10000"),
        ("colour=red", 400, "unknown tap parameter"),
        ("service=nope", 404, "unknown service"),
    ] {
        match tap::subscribe(mesh.a.admin, &format!("/tap?{query}")).await {
            Ok(_) => panic!("{query} was taken"),
            Err((s, m)) => {
                assert_eq!(s, status, "{query}: {m}");
                assert!(m.contains(says), "{query}: {m}");
            }
        }
    }
}

/// A subscriber that stops reading fills the sockets, then its buffer (16 events here),
/// and is dropped with the reason as its stream's last line; traffic is not held up.
#[tokio::test]
async fn a_subscriber_that_reads_too_slowly_is_dropped_and_told_why() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mesh = Mesh::with_config("[tap]\nbuffer = 16\n").await;
    // A reader with a small window that reads nothing until it has been dropped.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(mesh.a.admin).await.unwrap();
    stream
        .write_all(b"GET /tap?rate=10000 HTTP/1.1\r\nhost: admin\r\n\r\n")
        .await
        .unwrap();
    // Long paths make long events: the sockets' buffers (megabytes) fill in seconds.
    let path = format!("/slow-reader/{}", "x".repeat(480));
    let load = Load::start(mesh.a.outbound, "world", &path, 400.0);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !mesh.a.log().contains("tap subscriber dropped") {
        assert!(
            std::time::Instant::now() < deadline,
            "not dropped: {}",
            mesh.a.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let outcomes = load.finish().await;
    let failed = outcomes.iter().filter(|o| o.status != 200).count();
    assert_eq!(failed, 0, "of {} requests", outcomes.len());
    // Read until the closing line (the connection itself may stay open, kept alive).
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut chunk = [0u8; 65536];
    while !String::from_utf8_lossy(&got[got.len().saturating_sub(4096)..])
        .contains(r#""type":"closed""#)
    {
        let Ok(n) = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await else {
            panic!("no closing line within 10s; {} bytes read", got.len());
        };
        let n = n.unwrap();
        assert!(n > 0, "the stream ended without a closing line");
        got.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    let last = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("a last line");
    assert!(last.contains(r#""type":"closed""#), "{last}");
    assert!(last.contains("read too slowly"), "{last}");
    // A new subscriber is taken: the dropped one's place is free.
    subscribed(mesh.a.admin, "service=world").await;
}

/// The dashboard taps every proxy it scrapes, the rate split across them, and merges their
/// streams; a filter no proxy can match is refused as the proxies refuse it. Its live calls
/// page, in Chromium, shows the calls as they end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_merges_every_proxys_tap_and_shows_live_calls() {
    let demo = weft_tests::demo::Demo::start(24, &["--rps", "20", "--scrape-interval", "1s"]).await;
    weft_tests::eventually("three proxies scraped", Duration::from_secs(20), || async {
        let s = demo.api("/api/summary?window=60").await;
        (s["proxies_up"] == 3).then_some(())
    })
    .await;
    match tap::subscribe(demo.dashboard, "/api/tap?service=nope").await {
        Ok(_) => panic!("an unknown service was tapped"),
        Err((s, m)) => assert!(s == 404 && m.contains("unknown service"), "{s} {m}"),
    }
    let rate = 30;
    let mut t = tap::subscribe(
        demo.dashboard,
        &format!("/api/tap?service=world&direction=inbound&rate={rate}"),
    )
    .await
    .unwrap_or_else(|(s, m)| panic!("refused: {s} {m}"));
    let window = Duration::from_secs(4);
    let started = std::time::Instant::now();
    let mut lines = Vec::new();
    while started.elapsed() < window {
        if let Some(l) = t.next(window - started.elapsed()).await {
            lines.push(l);
        }
    }
    let subscribed: Vec<_> = lines.iter().filter(|l| l["type"] == "subscribed").collect();
    assert_eq!(subscribed.len(), 3, "one per proxy: {subscribed:#?}");
    for s in &subscribed {
        assert_eq!(s["rate"], rate / 3, "{s}");
    }
    let events: Vec<_> = lines.iter().filter(|l| l["type"] != "subscribed").collect();
    let proxies: std::collections::BTreeSet<_> = events
        .iter()
        .map(|e| e["proxy"].as_str().unwrap())
        .collect();
    assert!(
        proxies.len() >= 2,
        "events from several proxies: {proxies:?}"
    );
    for e in &events {
        assert_eq!(e["service"], "world", "{e}");
        assert_eq!(e["direction"], "inbound", "{e}");
    }
    // The rate holds: a second's burst and the window's worth, in all.
    let bound = rate as usize * (window.as_secs() as usize + 1);
    assert!(
        events.len() <= bound,
        "{} events over {window:?}",
        events.len()
    );
    drop(t);

    let browser = weft_tests::webdriver::Browser::start().await;
    // From the dashboard's service section, its live calls link.
    browser.goto(&format!("http://{}/", demo.dashboard)).await;
    let href = browser
        .wait_for(
            "world's live calls link",
            "const a = document.querySelector('.service[data-service=world] a.live-link'); return a && a.getAttribute('href');",
        )
        .await;
    assert_eq!(href, "/live?service=world", "{href}");
    browser
        .goto(&format!(
            "http://{}/live?service=world&direction=outbound",
            demo.dashboard
        ))
        .await;
    browser
        .wait_for(
            "live calls",
            "return document.querySelectorAll('#live-calls tbody tr').length >= 5",
        )
        .await;
    let rows = browser
        .eval(
            "return Array.from(document.querySelectorAll('#live-calls tbody tr')).map(r =>
                Array.from(r.cells).map(c => c.textContent));",
        )
        .await;
    browser
        .screenshot(&weft_tests::artifacts_dir().join("dashboard-live-calls.png"))
        .await;
    for r in rows.as_array().unwrap() {
        assert_eq!(r[2], "outbound", "{r}");
        assert_eq!(r[4], "world", "{r}");
        assert_eq!(r[5], "GET", "{r}");
        assert!(r[8].as_str().unwrap().ends_with(" ms"), "{r}");
    }
}

/// With identities, the dashboard taps each proxy over mutual TLS at its inbound listener,
/// as its own mesh identity, and the proxies count it there as that identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_taps_over_mutual_tls_as_its_own_identity() {
    use weft_tests::identity::{self, IdentityMesh};
    let mesh = IdentityMesh::start(26, "24h").await;
    let (_, token) = &mesh.tokens[2];
    let dash = identity::dashboard(
        mesh.control.destination,
        &mesh.ca,
        token,
        &[mesh.one.admin, mesh.two.admin],
    )
    .await;
    let addr = dash.addr("addr");
    identity::dashboard_identity(addr, |id| id["valid_until_unix_s"].is_u64()).await;
    weft_tests::eventually("both proxies scraped", Duration::from_secs(20), || async {
        let s = weft_tests::demo::api(addr, "/api/summary").await;
        let ready = s["proxies"]
            .as_array()?
            .iter()
            .filter(|p| p["inbound"].is_string())
            .count();
        (s["proxies_up"] == 2 && ready == 2).then_some(())
    })
    .await;
    let mut t = tap::subscribe(addr, "/api/tap?service=web&rate=1000")
        .await
        .unwrap_or_else(|(s, m)| panic!("refused: {s} {m}"));
    let proxy = mesh.one.outbound.to_string();
    for _ in 0..3 {
        assert_eq!(curl(&["-x", &proxy, "http://web/"]).await.status, 200);
    }
    let lines = t.until_quiet(QUIET).await;
    let ends: Vec<_> = lines.iter().filter(|l| l["type"] == "end").collect();
    let seen = |dir: &str| ends.iter().filter(|e| e["direction"] == dir).count();
    assert_eq!((seen("outbound"), seen("inbound")), (3, 3), "{lines:#?}");
    // Every event of an inbound request names the calling proxy and the instance, its
    // `start` too.
    let inbound: Vec<_> = lines
        .iter()
        .filter(|l| l["direction"] == "inbound")
        .collect();
    assert_eq!(inbound.len(), 9, "{lines:#?}");
    for e in inbound {
        assert_eq!(
            e["peer_identity"], "spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-1",
            "{e}"
        );
        assert_eq!(e["endpoint"], mesh.web.addr.to_string(), "{e}");
    }
    let series = "weft_inbound_peer_requests_total{tls=\"mutual\",peer_identity=\"spiffe://cluster.local/ns/weft/sa/weft-dashboard\"}";
    for p in [&mesh.one, &mesh.two] {
        let taps = p.sample(series).await.unwrap_or(0.0);
        assert!(taps >= 1.0, "{series}: {}", p.metrics().await);
    }
}

/// A tap's stream ends when its proxy drains (saying so), and the dashboard lets go of
/// every proxy's subscription as soon as its own subscriber leaves, even on a quiet filter.
#[tokio::test]
async fn taps_end_with_the_drain_and_with_their_subscriber() {
    let mesh = Mesh::start().await;
    let (a, b) = (mesh.a.admin.to_string(), mesh.b.admin.to_string());
    let (mut dashboard, addr) =
        weft_tests::demo::start_dashboard(&["--proxy", &a, "--proxy", &b]).await;
    weft_tests::eventually("both proxies scraped", Duration::from_secs(20), || async {
        let s = weft_tests::demo::api(addr, "/api/summary").await;
        (s["proxies_up"] == 2).then_some(())
    })
    .await;
    let subscribers = "weft_tap_subscribers";
    // A filter nothing matches on a healthy mesh: no event ever flows.
    let quiet = tap::subscribe(addr, "/api/tap?status=5xx")
        .await
        .unwrap_or_else(|(s, m)| panic!("refused: {s} {m}"));
    for p in [&mesh.a, &mesh.b] {
        weft_tests::eventually("subscribed", Duration::from_secs(5), || async {
            (p.sample(subscribers).await == Some(1.0)).then_some(())
        })
        .await;
    }
    drop(quiet);
    for p in [&mesh.a, &mesh.b] {
        // Within two heartbeats of each stream (the first write after a peer goes may
        // still succeed).
        weft_tests::eventually("let go", Duration::from_secs(15), || async {
            (p.sample(subscribers).await == Some(0.0)).then_some(())
        })
        .await;
    }
    let _ = dashboard.kill().await;

    let mut t = subscribed(mesh.a.admin, "service=world").await;
    let started = std::time::Instant::now();
    mesh.a.sigterm();
    let last = t
        .next(Duration::from_secs(5))
        .await
        .expect("a closing line");
    assert_eq!(last["type"], "closed", "{last}");
    assert_eq!(last["reason"], "the proxy is draining", "{last}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
