//! Identities from the control plane, run without Kubernetes: `weft control` signs each
//! node proxy's leaf after a bootstrap token proves its node (and the dashboard's after its
//! token proves its account), serves its own gRPC over TLS
//! and answers Destination to proxies only; leaves renew and the CA rotates under load
//! with no failed request and no restart.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use weft_tests::client::curl;
use weft_tests::identity::{self, wait_ready, IdentityMesh};
use weft_tests::load::{failures, Load};
use weft_tests::openssl::{presented, x509};
use weft_tests::proxy::{metric, WeftProxy};

const CONTROL_ID: &str = "URI:spiffe://cluster.local/ns/weft/sa/weft-control";
const NODE_2: &str = "URI:spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-2";
const DASHBOARD_ID: &str = "spiffe://cluster.local/ns/weft/sa/weft-dashboard";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_gets_the_identity_its_token_proves_and_nothing_else() {
    let mesh = IdentityMesh::start(61, "24h").await;
    let web = "http://web/".to_string();
    let h1 = curl(&["-x", &mesh.one.outbound.to_string(), &web]).await;
    assert_eq!(h1.status, 200, "{}\n{}", h1.text(), mesh.one.log());
    let h2 = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "host: web",
        &format!("http://{}/", mesh.one.outbound),
    ])
    .await;
    assert_eq!(h2.status, 200, "{}", h2.text());

    // node-2 serves a leaf for node-2 from the control plane's issuer.
    let served = mesh.served(mesh.two.inbound).await;
    assert_eq!(served.len(), 2, "{served:?}");
    let san = x509(&served[0], &["-ext", "subjectAltName"]).await;
    assert!(san.contains(NODE_2), "{san}");
    assert_eq!(served[1], identity::read(&mesh.ca, "issuer.pem"));
    // The control plane serves its own identity, from the same CA.
    let control = presented(mesh.control.destination, "h2").await;
    let san = x509(&control[0], &["-ext", "subjectAltName"]).await;
    assert!(san.contains(CONTROL_ID), "{san}");

    // The Destination API answers no one without a proxy's certificate: a gRPC call for
    // `web` over TLS with none gets UNAUTHENTICATED and no endpoint.
    let frame = mesh.tmp.path("get-web.grpc");
    std::fs::write(&frame, b"\0\0\0\0\x05\x0a\x03web").unwrap();
    let url = format!(
        "https://{}/weft.destination.v1.Destination/Get",
        mesh.control.destination
    );
    let anonymous = curl(&[
        "-k",
        "--http2",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "--data-binary",
        &format!("@{}", frame.display()),
        &url,
    ])
    .await;
    assert_eq!(
        anonymous.header("grpc-status"),
        Some("16"),
        "{:?} {}",
        anonymous.headers,
        anonymous.text()
    );
    assert!(!anonymous.text().contains(&mesh.web.addr.ip().to_string()));
    // Nor in plaintext: an h2c client gets a TLS alert, then the end.
    let mut h2c = tokio::net::TcpStream::connect(mesh.control.destination)
        .await
        .unwrap();
    h2c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), h2c.read_to_end(&mut answer))
        .await
        .expect("the control plane closes a plaintext connection")
        .unwrap_or_default();
    assert!(answer.first().is_none_or(|b| *b == 0x15), "{answer:?}");

    // node-1's token does not make a proxy node-2, and an unknown token makes it nothing:
    // each stays not ready and says why.
    let (_, one_token) = &mesh.tokens[0];
    let liar = mesh.proxy("127.0.61.3", "node-2", one_token).await;
    let forged = mesh.tmp.path("forged.token");
    std::fs::write(&forged, "0123456789abcdef0123456789abcdef\n").unwrap();
    let stranger = mesh.proxy("127.0.61.4", "node-4", &forged).await;
    for (proxy, why) in [
        (&liar, "the token proves spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-1, not spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-2"),
        (&stranger, "unknown bootstrap token"),
    ] {
        let said = weft_tests::eventually("a reason in /ready", Duration::from_secs(10), || async {
            let (status, body) = proxy.admin_get("/ready").await;
            (status == 503 && body.contains(why)).then_some(body)
        })
        .await;
        assert!(said.starts_with("not ready: no valid certificate"), "{said}");
        // The log is read from the proxy's stderr as it comes: it may trail /ready a moment.
        weft_tests::eventually("the reason logged", Duration::from_secs(5), || async {
            proxy.log().contains("could not get a certificate").then_some(())
        })
        .await;
    }
    // It cannot reach a peer either: it has no certificate to show.
    let refused = curl(&["-x", &liar.outbound.to_string(), &web]).await;
    assert!(refused.status >= 500, "{}", refused.text());
    let metrics = mesh.control.admin_get("/metrics").await.1;
    for result in ["signed", "wrong_identity", "unauthenticated"] {
        let series = format!("weft_control_identity_certify_requests_total{{result=\"{result}\"}}");
        assert!(
            metric(&metrics, &series).unwrap_or(0.0) >= 1.0,
            "{series}\n{metrics}"
        );
    }

    // The dashboard proves its account with its own token and gets an identity without a
    // node, shown in its API and, as a proxy's is, in its metrics. A node's token does not
    // make it the dashboard, nor the dashboard's token a proxy.
    let (_, dashboard_token) = &mesh.tokens[2];
    let dash = identity::dashboard(
        mesh.control.destination,
        &mesh.ca,
        dashboard_token,
        &[mesh.one.admin],
    )
    .await;
    let shown =
        identity::dashboard_identity(dash.addr("addr"), |id| id["valid_until_unix_s"].is_u64())
            .await;
    assert_eq!(shown["identity"], DASHBOARD_ID, "{shown}");
    assert!(shown["error"].is_null(), "{shown}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let until = shown["valid_until_unix_s"].as_u64().unwrap();
    assert!(
        until > now + 23 * 3600 && until <= now + 24 * 3600 + 60,
        "{shown}"
    );
    let own = weft_tests::client::get(dash.addr("addr"), "dashboard", "/metrics")
        .await
        .unwrap()
        .text();
    let info = format!("weft_identity_info{{identity=\"{DASHBOARD_ID}\"}}");
    assert_eq!(metric(&own, &info), Some(1.0), "{own}");
    assert_eq!(
        metric(&own, "weft_identity_leaf_expiry_timestamp_seconds"),
        Some(until as f64),
        "{own}"
    );
    let impostor = identity::dashboard(
        mesh.control.destination,
        &mesh.ca,
        one_token,
        &[mesh.one.admin],
    )
    .await;
    let refused = identity::dashboard_identity(impostor.addr("addr"), |id| {
        id["error"]
            .as_str()
            .is_some_and(|e| e.contains("not spiffe"))
    })
    .await;
    assert!(refused["valid_until_unix_s"].is_null(), "{refused}");
    let why = refused["error"].as_str().unwrap();
    assert!(
        why.contains(&format!("the token proves spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-1, not {DASHBOARD_ID}")),
        "{why}"
    );
    let posing = mesh.proxy("127.0.61.6", "node-3", dashboard_token).await;
    weft_tests::eventually(
        "the dashboard's token refused to a proxy",
        Duration::from_secs(10),
        || async {
            let (status, body) = posing.admin_get("/ready").await;
            (status == 503 && body.contains(&format!("the token proves {DASHBOARD_ID}, not")))
                .then_some(())
        },
    )
    .await;

    // A CA folder that goes bad is not taken: the last good CA keeps signing.
    identity::replace(&mesh.ca, "issuer.pem", "not a certificate\n");
    weft_tests::eventually("the bad CA refused", Duration::from_secs(10), || async {
        mesh.control
            .log()
            .contains("CA material not taken; keeping the last good one")
            .then_some(())
    })
    .await;
    let (_, two_token) = &mesh.tokens[1];
    let again = mesh.proxy("127.0.61.5", "node-2", two_token).await;
    wait_ready(&again).await;
}

/// Leaves of 30 s under 100 req/s, renewed at 70 % of their life: each renewal moves the
/// peer connections onto new handshakes. Meanwhile the CA rotates the whole way — old and
/// new anchors, then the new issuer, then the new anchor alone — by rewriting the control
/// plane's files, with no restart and no failed request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_renew_and_the_ca_rotates_under_load_with_no_failed_request() {
    let mesh = IdentityMesh::start(62, "30s").await;
    let started = Instant::now();
    let load = Load::start(mesh.one.outbound, "web", "/", 100.0);
    let first = mesh.served(mesh.two.inbound).await;
    let serial = |pem: String| async move { x509(&pem, &["-serial"]).await };
    let first_serial = serial(first[0].clone()).await;

    // The served leaf changes within its first 70 % and a little.
    let renewed_at = weft_tests::eventually("a renewed leaf", Duration::from_secs(40), || async {
        let now = mesh.served(mesh.two.inbound).await;
        let s = serial(now.first()?.clone()).await;
        (s != first_serial).then(|| started.elapsed())
    })
    .await;
    println!("node-2's leaf renewed after {renewed_at:?}");

    // The new CA, beside the old one.
    let next = mesh.tmp.path("next-ca");
    identity::init_ca(&next).await;
    let old_anchor = identity::read(&mesh.ca, "anchors.pem");
    let new_anchor = identity::read(&next, "anchors.pem");
    identity::replace(
        &mesh.ca,
        "anchors.pem",
        &format!("{old_anchor}{new_anchor}"),
    );
    let anchors = |proxy: &WeftProxy, want: f64| {
        let proxy = proxy.admin;
        async move {
            let text = weft_tests::client::get(proxy, "admin", "/metrics")
                .await
                .ok()?
                .text();
            (metric(&text, "weft_identity_trust_anchors")? == want).then_some(())
        }
    };
    let step = Instant::now();
    for p in [&mesh.one, &mesh.two] {
        weft_tests::eventually("both anchors taken", Duration::from_secs(45), || {
            anchors(p, 2.0)
        })
        .await;
    }
    println!("both anchors in every bundle after {:?}", step.elapsed());

    // The new issuer: every proxy serves a leaf from it by its next renewal.
    identity::replace(
        &mesh.ca,
        "issuer-key.pem",
        &identity::read(&next, "issuer-key.pem"),
    );
    identity::replace(&mesh.ca, "issuer.pem", &identity::read(&next, "issuer.pem"));
    let new_issuer = identity::read(&next, "issuer.pem");
    let step = Instant::now();
    for p in [&mesh.one, &mesh.two] {
        weft_tests::eventually(
            "a leaf from the new issuer",
            Duration::from_secs(45),
            || async {
                let now = mesh.served(p.inbound).await;
                (now.get(1) == Some(&new_issuer)).then_some(())
            },
        )
        .await;
    }
    println!("every proxy on the new issuer after {:?}", step.elapsed());

    // The old anchor dropped.
    identity::replace(&mesh.ca, "anchors.pem", &new_anchor);
    let step = Instant::now();
    for p in [&mesh.one, &mesh.two] {
        weft_tests::eventually("the old anchor dropped", Duration::from_secs(45), || {
            anchors(p, 1.0)
        })
        .await;
    }
    println!(
        "the old anchor gone from every bundle after {:?}",
        step.elapsed()
    );
    let control = presented(mesh.control.destination, "h2").await;
    assert_eq!(
        control.get(1),
        Some(&new_issuer),
        "the control plane's own leaf"
    );

    // Two minutes of load in all.
    let left = Duration::from_secs(120).saturating_sub(started.elapsed());
    tokio::time::sleep(left).await;
    let outcomes = load.finish().await;
    let failed = failures(&outcomes);
    println!(
        "{} requests in {:?}, {} failed",
        outcomes.len(),
        started.elapsed(),
        failed.len()
    );
    assert!(outcomes.len() >= 10_000, "{}", outcomes.len());
    assert!(
        failed.is_empty(),
        "{:?}\n{}\n{}",
        &failed[..failed.len().min(5)],
        mesh.one.log(),
        mesh.two.log()
    );

    // Peer connections were made again on renewed leaves, several times.
    let text = mesh.two.metrics().await;
    let accepted = metric(
        &text,
        "weft_tcp_tls_accepted_connections_total{direction=\"inbound\"}",
    )
    .unwrap();
    println!("node-2 accepted {accepted} mutual TLS connections");
    assert!(accepted >= 4.0, "{text}");
    // No proxy restarted: each said it was listening once.
    for p in [&mesh.one, &mesh.two] {
        assert_eq!(p.log().matches("weft proxy listening").count(), 1);
    }
    assert_eq!(
        mesh.control.log().matches("weft control listening").count(),
        1
    );
}

/// A control plane away for longer than a leaf lives: the proxy's leaf expires, it says so
/// in /ready, and once the control plane is back it gets a new one by itself — its expired
/// leaf does not stand in the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_whose_leaf_expired_in_an_outage_gets_a_new_one() {
    let mut mesh = IdentityMesh::start(63, "10s").await;
    let started = Instant::now();
    let (control, one) = (&mut mesh.control, &mesh.one);
    let ((), expired) = tokio::join!(control.outage(Duration::from_secs(15)), async {
        weft_tests::eventually("the leaf expired", Duration::from_secs(14), || async {
            let (status, body) = one.admin_get("/ready").await;
            (status == 503 && body.contains("no valid certificate")).then(|| started.elapsed())
        })
        .await
    });
    println!("not ready {expired:?} into the outage");
    let said = weft_tests::eventually("back to ready", Duration::from_secs(30), || async {
        let (status, body) = mesh.one.admin_get("/ready").await;
        (status == 200).then_some(body)
    })
    .await;
    println!(
        "ready again {:?} after the outage began: {said}",
        started.elapsed()
    );
    assert!(
        mesh.one.log().contains("could not get a certificate"),
        "{}",
        mesh.one.log()
    );
    // Once node-2 has its new leaf too, requests cross again.
    wait_ready(&mesh.two).await;
    let rsp = curl(&["-x", &mesh.one.outbound.to_string(), "http://web/"]).await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
}

/// Moving a plaintext mesh to TLS: a node still running a proxy from before identities
/// (plaintext only) is refused by proxies with identities, unless they run with the
/// migration setting, which dials it in plaintext; a peer that speaks TLS is never let off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_setting_dials_a_plaintext_only_peer_in_plaintext() {
    let mesh = IdentityMesh::start(64, "24h").await;
    // node-3 runs a proxy from before identities: its own discovery file, plaintext.
    let legacy_app = weft_tests::backend::Backend::start("127.0.64.3").await;
    let own = mesh.tmp.path("legacy.toml");
    weft_tests::discovery::write(&own, &[]);
    let legacy = WeftProxy::start("127.0.64.3", &own).await;
    let mut app = weft_tests::discovery::Ep::on(legacy_app.addr, legacy.inbound);
    app.labels.push(("node".into(), "node-3".into()));
    let mut web = weft_tests::discovery::Ep::on(mesh.web.addr, mesh.two.inbound);
    web.labels.push(("node".into(), "node-2".into()));
    let services = [("web", vec![web]), ("legacy", vec![app])];
    weft_tests::discovery::write(&mesh.discovery(), &services);
    weft_tests::discovery::write(&own, &services[1..]);
    let url = "http://legacy/";

    // Strict: the handshake fails, and the caller is told.
    let strict = weft_tests::eventually("legacy known", Duration::from_secs(10), || async {
        let rsp = curl(&["-x", &mesh.one.outbound.to_string(), url]).await;
        (!rsp.text().contains("unknown service")).then_some(rsp)
    })
    .await;
    assert_eq!(strict.status, 502, "{}", strict.text());
    assert!(strict.text().contains("TLS handshake"), "{}", strict.text());
    assert_eq!(legacy_app.count(), 0);

    // With the migration setting: dialled again in plaintext, and answered.
    let (_, token) = &mesh.tokens[0];
    let moving = mesh
        .proxy_with("127.0.64.4", "node-1", token, &["--allow-plaintext-peers"])
        .await;
    wait_ready(&moving).await;
    let rsp = curl(&["-x", &moving.outbound.to_string(), url]).await;
    assert_eq!(rsp.status, 200, "{}\n{}", rsp.text(), moving.log());
    assert!(moving
        .log()
        .contains("peer does not speak TLS; dialling it in plaintext"));
    // A peer that speaks TLS still gets TLS from it: web on node-2 answers over mTLS.
    let rsp = curl(&["-x", &moving.outbound.to_string(), "http://web/"]).await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    let inbound = mesh.two.metrics().await;
    let series = "weft_inbound_peer_requests_total{tls=\"mutual\",peer_identity=\"spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-1\"}";
    assert!(metric(&inbound, series).unwrap_or(0.0) >= 1.0, "{inbound}");
}
