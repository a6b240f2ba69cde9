//! The mesh's edges as real processes see them: requests that loop through the mesh are
//! stopped by the hop count, and staging overrides (`weft-ctx-override`) reroute a call
//! only when they come from a source the proxy trusts.
use std::time::Duration;

use weft_tests::backend::Backend;
use weft_tests::client::curl;
use weft_tests::demo::Demo;
use weft_tests::discovery::Ep;
use weft_tests::kube_mesh::KubeMesh;
use weft_tests::mesh::{Mesh, NODE_B};
use weft_tests::proxy::WeftProxy;
use weft_tests::site_cert::{self, SiteCert};

/// A mesh whose `world` has a staging version, `world-v2`, on node B (returned).
async fn with_staging() -> (Mesh, Backend) {
    let mesh = Mesh::start().await;
    let staging = Backend::start(NODE_B).await;
    mesh.publish(&[
        ("world", vec![mesh.on_b(mesh.world.addr)]),
        ("world-v2", vec![mesh.on_b(staging.addr)]),
    ])
    .await;
    (mesh, staging)
}

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
    let (mesh, staging) = with_staging().await;
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
/// `weft-ctx-*` headers, and its proxy honours what its node's app sent. Sent from outside
/// through the demo's ingress, the header is stripped.
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
    // From outside, through the demo's ingress, the same header is stripped and counted.
    let ingress = demo.ingress.expect("the demo's ingress");
    let url = format!("http://{ingress}/");
    let rsp = curl(&["-H", override_, &url]).await;
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    assert!(rsp.text().starts_with("Hello ("), "{}", rsp.text());
    assert!(!rsp.text().contains("world v2"), "{}", rsp.text());
    let metrics = weft_tests::client::get(one.admin, "admin", "/metrics")
        .await
        .unwrap()
        .text();
    let dropped = "weft_context_headers_dropped_total{direction=\"ingress\",header=\"weft-ctx-override\",reason=\"outside caller\"}";
    assert_eq!(weft_tests::proxy::metric(&metrics, dropped), Some(1.0));

    let status = demo.stop().await;
    assert!(status.success(), "{status:?}");
}

/// `curl`'s status for `url`, trusting only `ca`; 0 when no TLS session (or answer) came.
async fn https_status(resolve: &str, ca: &std::path::Path, url: &str) -> u16 {
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .args(["--resolve", resolve, "--cacert"])
        .arg(ca)
        .arg(url)
        .output()
        .await
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The config of an ingress taking `world.example.test` (`/v2` to world-v2, the rest to
/// world) with TLS from `site`'s files, logging to `log`.
fn ingress_config(site: &SiteCert, log: &std::path::Path) -> String {
    format!(
        r#"[ingress]
tls_cert = "{}"
tls_key = "{}"
access_log = "{}"

[[ingress.hosts]]
names = ["world.example.test"]

[[ingress.hosts.routes]]
name = "staging"
matches = [{{ path = {{ prefix = "/v2" }} }}]
backends = [{{ service = "world-v2" }}]

[[ingress.hosts.routes]]
name = "all"
backends = [{{ service = "world" }}]
"#,
        site.cert.display(),
        site.key.display(),
        log.display()
    )
}

/// An ingress terminates TLS (HTTP/1.1 and HTTP/2, curl trusting the site's CA), routes by
/// host and path into the mesh, and strips every `weft-*` header an outside caller sends:
/// a deadline long past, an override and a forged route change nothing, and are counted.
/// A new certificate written over the old is served from the next handshake; a broken one
/// is refused and the last good one stays.
#[tokio::test]
async fn an_ingress_terminates_tls_routes_by_host_and_path_and_strips_mesh_headers() {
    let (mesh, staging) = with_staging().await;
    let site = site_cert::issue(mesh.dir.0.as_path(), "site", "world.example.test");
    let log = mesh.dir.path("access.log");
    let config = mesh.dir.path("ingress.toml");
    std::fs::write(&config, ingress_config(&site, &log)).unwrap();
    let ingress = WeftProxy::start_with(
        "127.0.0.4",
        &mesh.discovery,
        &[
            "--config",
            config.to_str().unwrap(),
            "--ingress",
            "127.0.0.4:0",
        ],
    )
    .await;
    let port = ingress.ingress.expect("the ingress listener").port();
    let resolve = format!("world.example.test:{port}:127.0.0.4");
    let url = |path: &str| format!("https://world.example.test:{port}{path}");
    let https = |path: String, ca: &std::path::Path, extra: &[&str]| {
        let (resolve, ca) = (resolve.clone(), ca.to_str().unwrap().to_string());
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        async move {
            let mut args = vec!["--resolve", &resolve, "--cacert", &ca, &path];
            args.extend(extra.iter().map(String::as_str));
            curl(&args).await
        }
    };

    let forged = [
        "-H",
        "weft-ctx-deadline: 1",
        "-H",
        "weft-ctx-override: world => world-v2",
        "-H",
        "weft-dst-service: world-v2;endpoint=127.0.0.1:9",
        "-H",
        "weft-ctx-hops: 5",
    ];
    for version in ["--http1.1", "--http2"] {
        let mut extra = vec![version];
        extra.extend(forged);
        let rsp = https(url("/echo"), &site.ca, &extra).await;
        assert_eq!(rsp.status, 200, "{version}: {}", rsp.text());
        let line = rsp.raw_head.lines().next().unwrap_or_default().to_string();
        let want = if version == "--http2" {
            "HTTP/2 200"
        } else {
            "HTTP/1.1 200"
        };
        assert!(line.starts_with(want), "{line}");
        assert_eq!(
            rsp.header("x-backend"),
            Some(mesh.world.addr.to_string().as_str())
        );
        let echo: serde_json::Value = serde_json::from_slice(&rsp.body).unwrap();
        let h = &echo["headers"];
        assert!(h.get("weft-ctx-override").is_none(), "{echo}");
        assert!(h.get("weft-dst-service").is_none(), "{echo}");
        assert_eq!(h["host"][0], format!("world.example.test:{port}"), "{echo}");
        // The caller's hop count is the one thing kept (a loop through the ingress counts).
        assert_eq!(h["weft-ctx-hops"][0], "6", "{echo}");
    }
    let dropped = "weft_context_headers_dropped_total{direction=\"ingress\",header=\"weft-ctx-override\",reason=\"outside caller\"}";
    assert_eq!(ingress.sample(dropped).await, Some(2.0));
    assert!(ingress
        .log()
        .contains("dropped weft-* headers from an outside caller"));

    // By path to the staging version; an unknown host is no route.
    let rsp = https(url("/v2/echo"), &site.ca, &[]).await;
    assert_eq!(
        rsp.header("x-backend"),
        Some(staging.addr.to_string().as_str())
    );
    let other = format!("other.example.test:{port}:127.0.0.4");
    let rsp = curl(&[
        "-k",
        "--resolve",
        &other,
        &format!("https://other.example.test:{port}/"),
    ])
    .await;
    assert_eq!(rsp.status, 404, "{}", rsp.text());
    assert_eq!(rsp.header("weft-error"), Some("no route"));

    // A count at the limit is a loop, whoever sent it.
    let rsp = https(url("/echo"), &site.ca, &["-H", "weft-ctx-hops: 16"]).await;
    assert_eq!(rsp.status, 508, "{}", rsp.text());
    // What the mesh answers itself tells an outside caller its cause, nothing of the inside.
    assert_eq!(rsp.text(), "weft: loop detected\n");

    // The access log has a JSON line per request (written by a thread of its own).
    let lines: Vec<serde_json::Value> =
        weft_tests::eventually("the access log's lines", Duration::from_secs(5), || async {
            let text = std::fs::read_to_string(&log).ok()?;
            let lines: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            (lines.len() == 5).then_some(lines)
        })
        .await;
    assert_eq!(lines[0]["service"], "world");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[2]["service"], "world-v2");
    assert_eq!(lines[3]["status"], 404);
    assert_eq!(lines[4]["status"], 508);

    // A new certificate (another CA's) is served once written; a broken one is refused.
    // (Between the two files' writes the pair does not match: refused, then taken.)
    let renewed = site_cert::issue(mesh.dir.0.as_path(), "renewed", "world.example.test");
    std::fs::copy(&renewed.key, &site.key).unwrap();
    std::fs::copy(&renewed.cert, &site.cert).unwrap();
    weft_tests::eventually(
        "the new certificate served",
        Duration::from_secs(10),
        || async {
            let status = https_status(&resolve, &renewed.ca, &url("/")).await;
            (status == 200).then_some(())
        },
    )
    .await;
    let errors = ingress
        .sample("weft_config_errors_total")
        .await
        .unwrap_or(0.0);
    std::fs::write(&site.cert, "not a certificate").unwrap();
    weft_tests::eventually(
        "the broken certificate refused",
        Duration::from_secs(10),
        || async {
            let now = ingress.sample("weft_config_errors_total").await?;
            (now > errors).then_some(())
        },
    )
    .await;
    let status = https_status(&resolve, &renewed.ca, &url("/")).await;
    assert_eq!(status, 200, "the last good certificate stays");
}

/// A proxy on `ip` that asks to be the ingress (as `weft ingress` does), with a token of the
/// `weft-ingress` account bound to `pod` (`None`: to nothing); `extra` flags after.
async fn as_ingress(mesh: &KubeMesh, ip: &str, pod: Option<&str>, extra: &[&str]) -> WeftProxy {
    let token = format!("token-of-weft-ingress-on-{ip}");
    let audience = weft_tests::kube_mesh::TOKEN_AUDIENCE;
    let node = pod.map(|_| "node-a");
    mesh.kube.issue_token(
        &token,
        &[audience],
        "weft:weft-ingress",
        pod.unwrap_or(""),
        node,
    );
    let token_file = mesh.dir.path(&format!("{ip}.token"));
    std::fs::write(&token_file, &token).unwrap();
    let mut args = vec!["--identity-account", "weft-ingress"];
    args.extend_from_slice(extra);
    let ca = mesh.dir.path("ca");
    let control = mesh.control.destination;
    weft_tests::identity::proxy(ip, "node-a", control, &ca, &token_file, &args).await
}

/// On Kubernetes with identities, the ingress proves its own account (`weft-ingress`) and
/// is certified as the ingress, not as its node's proxy: node B's inbound takes it over
/// mutual TLS, knowing it by that identity.
#[tokio::test]
async fn the_ingress_has_an_identity_of_its_own_that_every_proxy_takes() {
    let mesh = KubeMesh::start_mtls().await;
    for p in [&mesh.a, &mesh.b] {
        weft_tests::identity::wait_ready(p).await;
    }
    let world = Backend::start(NODE_B).await;
    mesh.add_instance(&world, "node-b", "world-1", "v1");
    let config = mesh.dir.path("ingress.toml");
    std::fs::write(
        &config,
        "[[ingress.hosts]]\nnames = [\"*\"]\n\n[[ingress.hosts.routes]]\nname = \"all\"\nbackends = [{ service = \"world\" }]\n",
    )
    .unwrap();
    let ingress = as_ingress(
        &mesh,
        "127.0.0.9",
        Some("weft-ingress-0"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--ingress",
            "127.0.0.9:0",
        ],
    )
    .await;
    weft_tests::identity::wait_ready(&ingress).await;
    let own = "spiffe://cluster.local/ns/weft/sa/weft-ingress";
    let info = format!("weft_identity_info{{identity=\"{own}\"}}");
    assert_eq!(
        ingress.sample(&info).await,
        Some(1.0),
        "{}",
        ingress.metrics().await
    );

    // A token of the account bound to no pod (minted with `kubectl create token`) proves
    // nothing: the leaf would be a client every proxy takes.
    let refused = as_ingress(&mesh, "127.0.0.10", None, &[]).await;

    let url = format!(
        "http://{}/echo",
        ingress.ingress.expect("the ingress listener")
    );
    let seen =
        format!("weft_inbound_peer_requests_total{{tls=\"mutual\",peer_identity=\"{own}\"}}");
    weft_tests::eventually(
        "world through the ingress, in mutual TLS",
        Duration::from_secs(20),
        || async {
            let rsp = curl(&[&url]).await;
            let crossed = mesh.b.sample(&seen).await.unwrap_or(0.0);
            (rsp.status == 200 && crossed >= 1.0).then_some(())
        },
    )
    .await;
    assert!(world.count() >= 1);
    weft_tests::eventually(
        "the loose token refused",
        Duration::from_secs(10),
        || async {
            let (status, body) = refused.admin_get("/ready").await;
            (status == 503 && body.contains("bound to no pod")).then_some(())
        },
    )
    .await;
}
