//! Mutual TLS between the nodes' proxies, as `weft demo` runs it by default: every kind of
//! request crosses it, each proxy serves a leaf naming its node, and the inbound lets in no
//! one without a certificate of the mesh — checked with openssl and curl as an intruder on
//! the node network would try.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use weft_tests::client::curl;
use weft_tests::demo::Demo;
use weft_tests::openssl::{openssl, s_client};
use weft_tests::proxy::weft_bin;
use weft_tests::TempDir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hop_between_nodes_is_mutual_tls_and_takes_only_mesh_peers() {
    let demo = Demo::start(15, &["--rps", "0"]).await;
    assert!(demo.banner.contains("mutual TLS 1.3"), "{}", demo.banner);
    let (one, two) = (&demo.nodes[0], &demo.nodes[1]);

    // HTTP/1.1 from node 1's apps reaches hello on the other nodes, and hello's call to
    // world crosses nodes too: both hops over mutual TLS.
    let mut crossed = false;
    for _ in 0..60 {
        let rsp = curl(&["-x", &demo.curl_proxy, "http://hello/"]).await;
        assert_eq!(rsp.status, 200, "{}\n{}", rsp.text(), demo.stderr());
        crossed |= !rsp
            .text()
            .starts_with(&format!("Hello ({})", one.outbound.ip()));
        if crossed {
            break;
        }
    }
    assert!(crossed, "no answer came from another node");
    // HTTP/2 from an app, and gRPC through a tunnel as http_proxy clients make one.
    let h2 = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "host: world",
        &format!("http://{}/", one.outbound),
    ])
    .await;
    assert_eq!(h2.status, 200, "{}", h2.text());
    let world = two.apps.iter().find(|(a, _)| a == "world").unwrap().1;
    let greeted = tokio::process::Command::new(weft_bin())
        .args(["greet", &format!("world:{}", world.port())])
        .args(["--proxy", &one.outbound.to_string()])
        .output()
        .await
        .unwrap();
    assert!(
        greeted.status.success(),
        "{}",
        String::from_utf8_lossy(&greeted.stderr)
    );

    // Each inbound serves a leaf that names its node in the mesh's trust domain.
    let shown = s_client(two.inbound, &["-showcerts"]).await;
    let pem_start = shown.find("-----BEGIN CERTIFICATE-----").expect(&shown);
    let pem_end = shown.find("-----END CERTIFICATE-----").unwrap() + 25;
    let san = openssl(
        &["x509", "-noout", "-ext", "subjectAltName"],
        &shown.as_bytes()[pem_start..pem_end],
    )
    .await;
    assert!(
        san.contains("URI:spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-2"),
        "{san}"
    );

    // No client certificate: the handshake is refused, nothing is served.
    let bare = s_client(two.inbound, &[]).await;
    assert!(bare.contains("certificate required"), "{bare}");
    assert!(!bare.contains("HTTP/1.1 "), "{bare}");

    // A self-signed certificate, even one naming a node of ours.
    let dir = TempDir::new("mtls");
    let (cert, key) = (dir.path("c.pem"), dir.path("k.pem"));
    let made = openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=intruder",
            "-addext",
            "subjectAltName=URI:spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-1",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
        b"",
    )
    .await;
    assert!(cert.exists(), "{made}");
    let forged = s_client(
        two.inbound,
        &[
            "-cert",
            cert.to_str().unwrap(),
            "-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    assert!(forged.contains("alert"), "{forged}");
    assert!(!forged.contains("HTTP/1.1 "), "{forged}");
    weft_tests::eventually("the refusal logged", Duration::from_secs(5), || async {
        let log = demo.stderr();
        (log.contains("refused a peer's certificate") && log.contains("self_signed")).then_some(())
    })
    .await;

    // Plaintext, HTTP/1.1 or HTTP/2, is turned away at the inbound.
    let plain = curl(&["-H", "host: hello", &format!("http://{}/", two.inbound)]).await;
    assert_eq!(plain.status, 403);
    assert_eq!(plain.header("weft-error"), Some("mutual TLS required"));
    // An h2c client gets the same words, not an HTTP/2 connection, and then the end.
    let mut h2c = tokio::net::TcpStream::connect(two.inbound).await.unwrap();
    h2c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut h2c, &mut answer),
    )
    .await
    .expect("the inbound closes a plaintext connection")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden"), "{answer}");

    // The admin API says how each endpoint is reached, and whom its node's proxy must be.
    let eps: serde_json::Value = serde_json::from_str(
        &weft_tests::client::get(one.admin, "admin", "/endpoints")
            .await
            .unwrap()
            .text(),
    )
    .unwrap();
    let on_two = eps["services"]["world"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["addr"] == world.to_string())
        .unwrap();
    assert_eq!(on_two["tls"]["mode"], "mutual", "{on_two}");
    assert_eq!(
        on_two["tls"]["identity"], "spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-2",
        "{on_two}"
    );

    // Each refusal is counted by its reason, beside the connections let in.
    let metrics = weft_tests::client::get(two.admin, "admin", "/metrics")
        .await
        .unwrap()
        .text();
    let count = |sample: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {sample} in\n{metrics}"))
    };
    for reason in ["self_signed", "no_certificate", "plaintext"] {
        let sample = format!("weft_tls_refused_connections_total{{reason=\"{reason}\"}}");
        assert!(count(&sample) >= 1.0, "{sample}");
    }
    assert!(
        count("weft_tcp_tls_accepted_connections_total{direction=\"inbound\"}") >= 1.0,
        "{metrics}"
    );

    // Every request that crossed into node 2 came over mutual TLS, and says from whom; the
    // dashboard's top line shows the share.
    let from_peers = weft_tests::proxy::metric(
        &metrics,
        "weft_inbound_peer_requests_total{tls=\"mutual\",peer_identity=\"spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-1\"}",
    )
    .unwrap_or(0.0);
    assert!(from_peers >= 1.0, "{metrics}");
    assert_eq!(
        weft_tests::proxy::metric(
            &metrics,
            "weft_inbound_peer_requests_total{tls=\"none\",peer_identity=\"\"}"
        ),
        Some(0.0),
        "{metrics}"
    );
    let share = weft_tests::eventually("the mTLS share", Duration::from_secs(15), || async {
        // Traffic after the dashboard's first scrape, which is only its baseline.
        curl(&["-x", &demo.curl_proxy, "http://hello/"]).await;
        let summary = demo.api("/api/summary?window=5m").await;
        summary["stats"]["mtls_share"].as_f64()
    })
    .await;
    assert_eq!(share, 1.0);
    // The dashboard has an identity of its own from the demo's CA, with no node in it.
    let summary = demo.api("/api/summary").await;
    assert_eq!(
        summary["identity"]["identity"], "spiffe://cluster.local/ns/weft/sa/weft-dashboard",
        "{summary}"
    );
    assert!(
        summary["identity"]["valid_until_unix_s"].is_u64(),
        "{summary}"
    );
    // The instance table names each node's proxy by its identity.
    let instances = demo.api("/api/instances?window=5m").await;
    let node_two = instances["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "node-2")
        .unwrap_or_else(|| panic!("{instances}"));
    assert_eq!(
        node_two["identity"], "spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-2",
        "{node_two}"
    );

    let status = demo.stop().await;
    assert!(status.success(), "{status:?}");
}

/// Discovery says which node each endpoint's proxy is on; a proxy whose leaf names another
/// node is refused by whoever dials it, and no request reaches its instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_whose_leaf_names_another_node_is_refused() {
    let demo = Demo::start(16, &["--rps", "0"]).await;
    let (one, three) = (&demo.nodes[0], &demo.nodes[2]);
    let log = demo.stderr();
    let file = log
        .lines()
        .find_map(|l| l.split("file=").nth(1)?.split_whitespace().next())
        .unwrap_or_else(|| panic!("no discovery file in the log:\n{log}"))
        .to_string();
    // Before any request crosses: node 3's endpoints now claim to be on node-2.
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("node = \"node-3\""), "{text}");
    let tmp = format!("{file}.test");
    std::fs::write(&tmp, text.replace("node = \"node-3\"", "node = \"node-2\"")).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    assert_eq!(three.apps[0].0, "hello");
    let moved = three.apps[0].1.to_string();
    weft_tests::eventually("the label change", Duration::from_secs(10), || async {
        let rsp = weft_tests::client::get(one.admin, "admin", "/endpoints")
            .await
            .ok()?;
        let eps: serde_json::Value = serde_json::from_str(&rsp.text()).ok()?;
        let relabelled = eps["services"]["hello"]["endpoints"]
            .as_array()?
            .iter()
            .any(|e| e["addr"] == moved.as_str() && e["labels"]["node"] == "node-2");
        relabelled.then_some(())
    })
    .await;

    let world_three = format!("world ({})", three.outbound.ip());
    for _ in 0..30 {
        let rsp = curl(&["-x", &one.outbound.to_string(), "http://world/"]).await;
        assert!(
            !rsp.text().contains(&world_three),
            "reached node 3: {}",
            rsp.text()
        );
        // Answered elsewhere, or (the demo retries nothing) refused with why.
        let refused = rsp.status == 502 && rsp.text().contains("invalid peer certificate");
        assert!(
            rsp.status == 200 || refused,
            "{} {}",
            rsp.status,
            rsp.text()
        );
    }
    let metrics = weft_tests::client::get(one.admin, "admin", "/metrics")
        .await
        .unwrap()
        .text();
    let refused = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("weft_tls_refused_connections_total{reason=\"wrong_identity\"}")?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0);
    assert!(refused >= 1.0, "{metrics}");
    // One line says why, and whom the dialler wanted there.
    let log = demo.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("refused a peer's certificate")
                && l.contains("wrong_identity")
                && l.contains("spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-2")),
        "{log}"
    );
    let status = demo.stop().await;
    assert!(status.success(), "{status:?}");
}
