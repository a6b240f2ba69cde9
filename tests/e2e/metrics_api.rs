//! The external metrics API (`external.metrics.k8s.io/v1beta1`) as an HPA reaches it
//! through the API server's aggregator: over HTTPS, from `weft dashboard` collecting real
//! proxies of a mesh run the Kubernetes way (a fake API server and `weft control`), under
//! a steady load whose own count the figures are checked against.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use weft_tests::backend::Backend;
use weft_tests::client::{curl, Reply};
use weft_tests::kube_mesh::KubeMesh;
use weft_tests::load::{failures, Load};
use weft_tests::mesh::{NODE_A, NODE_B};
use weft_tests::proxy::weft_bin;

const BASE: &str = "/apis/external.metrics.k8s.io/v1beta1";
const RATE: f64 = 40.0;
const WINDOW: u64 = 20;

/// `weft dashboard` collecting both proxies every second, serving the external metrics API
/// with its self-signed certificate; its two listeners' addresses from its stdout.
async fn dashboard(mesh: &KubeMesh) -> (tokio::process::Child, SocketAddr) {
    dashboard_with(mesh, &[]).await
}

async fn dashboard_with(mesh: &KubeMesh, extra: &[&str]) -> (tokio::process::Child, SocketAddr) {
    let mut child = tokio::process::Command::new(weft_bin())
        .args(["dashboard", "--addr", "127.0.0.1:0", "--interval", "1s"])
        .args(["--metrics-api-listen", "127.0.0.1:0"])
        .args(extra)
        .args(["--proxy", &mesh.a.admin.to_string()])
        .args(["--proxy", &mesh.b.admin.to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let api = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("https://").nth(1) {
                return rest.split('/').next().unwrap().parse().unwrap();
            }
        }
        panic!("the dashboard printed no external metrics API address");
    })
    .await
    .expect("the dashboard started");
    (child, api)
}

/// A GET as the aggregator sends it: HTTPS, the dashboard's self-signed certificate not
/// verified (the APIService says `insecureSkipTLSVerify`).
async fn get(api: SocketAddr, path: &str) -> (Reply, Value) {
    let url = format!("https://{api}{path}");
    let rsp = curl(&["-k", "--http1.1", &url]).await;
    let body = serde_json::from_slice(&rsp.body)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", rsp.text()));
    (rsp, body)
}

fn metric(name: &str, selector: &str) -> String {
    format!("{BASE}/namespaces/default/{name}?labelSelector={selector}")
}

/// The one item of a list, checked field by field against `ExternalMetricValue`'s JSON:
/// exactly these fields, of these types, and a value the Quantity grammar takes.
fn only_item(list: &Value, name: &str) -> (f64, u64, i64) {
    let keys = |v: &Value| -> BTreeSet<String> {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        keys(list),
        ["apiVersion", "items", "kind", "metadata"]
            .map(String::from)
            .into(),
        "{list}"
    );
    assert_eq!(list["kind"], "ExternalMetricValueList");
    assert_eq!(list["apiVersion"], "external.metrics.k8s.io/v1beta1");
    assert_eq!(list["metadata"], serde_json::json!({}));
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let item = &items[0];
    assert_eq!(
        keys(item),
        ["metricLabels", "metricName", "timestamp", "value", "window"]
            .map(String::from)
            .into(),
        "{item}"
    );
    assert_eq!(item["metricName"], name);
    assert_eq!(item["metricLabels"]["service"], "world", "{item}");
    let window = item["window"].as_u64().expect("window in whole seconds");
    let value = item["value"].as_str().expect("a Quantity is a string");
    let parsed = match value.strip_suffix('m') {
        Some(milli) => milli.parse::<u64>().map(|m| m as f64 / 1000.0),
        None => value.parse::<u64>().map(|v| v as f64),
    }
    .unwrap_or_else(|_| panic!("{value:?} is not a canonical Quantity"));
    let ts = item["timestamp"].as_str().unwrap();
    (parsed, window, unix_of(ts))
}

/// `2026-12-03T04:05:06Z` as unix seconds (the API's `metav1.Time`).
fn unix_of(ts: &str) -> i64 {
    let b = ts.as_bytes();
    assert!(
        ts.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[19] == b'Z',
        "{ts:?} is not RFC 3339 UTC to the second"
    );
    let n = |r: std::ops::Range<usize>| ts[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant), the inverse of the server's conversion.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_figures_match_the_load_generators_own_counts() {
    let mesh = KubeMesh::start().await;
    let (one, two) = (Backend::start(NODE_A).await, Backend::start(NODE_B).await);
    one.set_latency(40);
    two.set_latency(40);
    mesh.add_instance(&one, "node-a", "world-1", "v1");
    mesh.add_instance(&two, "node-b", "world-2", "v1");
    let (_dash, api) = dashboard(&mesh).await;

    // Before any caller has named world, no proxy knows it: no value, and a warning
    // saying why, never a zero.
    let (rsp, list) = get(api, &metric("requests-per-second", "service%3Dworld")).await;
    assert_eq!(rsp.status, 200, "{list}");
    assert_eq!(list["items"], serde_json::json!([]), "{list}");
    let warning = rsp.header("warning").unwrap_or_default().to_string();
    assert!(warning.starts_with("299 - "), "{warning:?}");
    assert!(
        warning.contains("world") || warning.contains("just started"),
        "{warning:?}"
    );

    weft_tests::eventually("world routed", Duration::from_secs(10), || async {
        let rsp = curl(&["-x", &mesh.proxy_flag(), "http://world/"]).await;
        (rsp.status == 200).then_some(())
    })
    .await;
    let load_started = now_unix();
    let load = Load::start(mesh.a.outbound, "world", "/", RATE);
    tokio::time::sleep(Duration::from_secs(WINDOW + 4)).await;

    let selector = format!("service%3Dworld%2Cwindow%3D{WINDOW}s");
    let (rsp, list) = get(api, &metric("requests-per-second", &selector)).await;
    assert_eq!(rsp.status, 200, "{list}");
    let (rps, window, at) = only_item(&list, "requests-per-second");
    assert_eq!(window, WINDOW);
    assert_eq!(
        list["items"][0]["metricLabels"]["window"],
        format!("{WINDOW}s")
    );
    // At most one collection round old (15 s is the bound the API promises).
    let age = now_unix() - at as f64;
    assert!((-1.0..=3.0).contains(&age), "the figure is {age:.1}s old");

    // The load's own count over the same window: requests sent in (at - window, at].
    let outcomes = load.snapshot();
    let from = at as f64 - WINDOW as f64 - load_started;
    let to = at as f64 - load_started;
    let sent = outcomes
        .iter()
        .filter(|o| o.at.as_secs_f64() > from && o.at.as_secs_f64() <= to)
        .count() as f64;
    let own = sent / WINDOW as f64;
    assert!(
        (rps - own).abs() / own < 0.05,
        "requests-per-second {rps} vs the load's own {own} ({sent} sent in the window)"
    );

    let (_, list) = get(api, &metric("requests-per-second-per-instance", &selector)).await;
    let (per_instance, _, _) = only_item(&list, "requests-per-second-per-instance");
    assert!(
        (per_instance * 2.0 - own).abs() / own < 0.05,
        "per instance {per_instance} × 2 instances vs {own}"
    );

    // Little's law: in flight = arrivals a second × the time each waits.
    let in_window: Vec<_> = outcomes
        .iter()
        .filter(|o| o.at.as_secs_f64() > from && o.at.as_secs_f64() <= to)
        .collect();
    let mean = in_window
        .iter()
        .map(|o| o.latency.as_secs_f64())
        .sum::<f64>()
        / in_window.len() as f64;
    let (_, list) = get(api, &metric("in-flight-requests", &selector)).await;
    let (in_flight, _, _) = only_item(&list, "in-flight-requests");
    assert!(
        (in_flight - own * mean).abs() / (own * mean) < 0.15,
        "in flight {in_flight} vs {own}/s × {mean:.4}s"
    );

    let (_, list) = get(api, &metric("p99-latency-seconds", &selector)).await;
    let (p99, _, _) = only_item(&list, "p99-latency-seconds");
    assert!(
        (0.040..0.080).contains(&p99),
        "p99 {p99}s where every answer takes 40 ms"
    );

    let (_, list) = get(api, &metric("success-rate", &selector)).await;
    let (success, _, _) = only_item(&list, "success-rate");
    eprintln!(
        "external metrics over {WINDOW}s: {rps} rps (load's own {own:.3}), {per_instance} per \
         instance, {in_flight} in flight (load: {:.3}), p99 {p99}s, success {success}",
        own * mean
    );
    let outcomes = load.finish().await;
    assert!(failures(&outcomes).is_empty());
    assert_eq!(success, 1.0, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_as_an_api_server_does() {
    let mesh = KubeMesh::start().await;
    let one = Backend::start(NODE_A).await;
    mesh.add_instance(&one, "node-a", "world-1", "v1");
    let (_dash, api) = dashboard(&mesh).await;

    // Discovery, as the aggregator and kubectl read it.
    let (rsp, group) = get(api, "/apis/external.metrics.k8s.io").await;
    assert_eq!(rsp.status, 200);
    assert_eq!(group["kind"], "APIGroup");
    assert_eq!(
        group["preferredVersion"]["groupVersion"],
        "external.metrics.k8s.io/v1beta1"
    );
    let (_, resources) = get(api, BASE).await;
    assert_eq!(resources["kind"], "APIResourceList");
    let names: BTreeSet<&str> = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["namespaced"], true);
            assert_eq!(r["kind"], "ExternalMetricValueList");
            assert_eq!(r["verbs"], serde_json::json!(["get"]));
            r["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "requests-per-second",
            "requests-per-second-per-instance",
            "in-flight-requests",
            "p99-latency-seconds",
            "success-rate"
        ]
        .into()
    );

    // A metric weft does not serve: 404 as a Status naming it.
    let (rsp, status) = get(api, &metric("cpu-usage", "service%3Dworld")).await;
    assert_eq!(rsp.status, 404);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(status["code"], 404);
    assert_eq!(status["details"]["name"], "cpu-usage");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("requests-per-second"));

    // A window out of range or unreadable, a selector that does not parse: 400.
    for selector in [
        "service%3Dworld%2Cwindow%3D2h",
        "service%3Dworld%2Cwindow%3D1s",
        "service%3Dworld%2Cwindow%3Dsoon",
        "service%20in%20(world",
    ] {
        let (rsp, status) = get(api, &metric("requests-per-second", selector)).await;
        assert_eq!(rsp.status, 400, "{selector}: {status}");
        assert_eq!(status["reason"], "BadRequest", "{status}");
        assert_eq!(status["code"], 400);
    }

    // Traffic, so world is known; then a selector that matches nothing is an empty list
    // with a warning, and one that matches is answered.
    weft_tests::eventually("world routed", Duration::from_secs(10), || async {
        let rsp = curl(&["-x", &mesh.proxy_flag(), "http://world/"]).await;
        (rsp.status == 200).then_some(())
    })
    .await;
    let load = Load::start(mesh.a.outbound, "world", "/", 20.0);
    let list = weft_tests::eventually("world's figures", Duration::from_secs(10), || async {
        let (_, list) = get(api, &metric("requests-per-second", "service%3Dworld")).await;
        (list["items"].as_array().is_some_and(|i| !i.is_empty())).then_some(list)
    })
    .await;
    only_item(&list, "requests-per-second");
    for (selector, why) in [
        ("service%3Dnope", "nope"),
        ("service%3Dworld%2Capp%3Dworld", "matches the selector"),
    ] {
        let (rsp, list) = get(api, &metric("requests-per-second", selector)).await;
        assert_eq!(rsp.status, 200);
        assert_eq!(list["items"], serde_json::json!([]), "{selector}: {list}");
        let warning = rsp.header("warning").unwrap_or_default();
        assert!(warning.contains(why), "{selector}: {warning:?}");
    }
    // world is in `default`, not in `prod`.
    let (_, list) = get(
        api,
        &format!("{BASE}/namespaces/prod/requests-per-second?labelSelector=service%3Dworld"),
    )
    .await;
    assert_eq!(list["items"], serde_json::json!([]));

    // Only TLS: a plaintext request gets no HTTP answer.
    let plain = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", &format!("http://{api}{BASE}")])
        .output()
        .await
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("APIResourceList"),
        "answered in plaintext"
    );
    assert!(failures(&load.finish().await).is_empty());
}

/// With `--metrics-api-kube-auth`, only the API server's aggregator gets in: a client
/// certificate from the CA the cluster publishes in
/// `kube-system/extension-apiserver-authentication`, with an allowed name. Anyone else
/// fails the handshake, before any figure is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_aggregator_may_call() {
    let mesh = KubeMesh::start().await;
    let dir = &mesh.dir.0;
    let aggregator = weft_tests::site_cert::issue(dir, "front-proxy", "front-proxy-client");
    let stranger = weft_tests::site_cert::sign(dir, "front-proxy", "stranger", "someone-else");
    let forger = weft_tests::site_cert::issue(dir, "forger", "front-proxy-client");
    mesh.kube.apply(
        "configmaps",
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "namespace": "kube-system", "name": "extension-apiserver-authentication" },
            "data": {
                "requestheader-client-ca-file": std::fs::read_to_string(&aggregator.ca).unwrap(),
                "requestheader-allowed-names": "[\"front-proxy-client\"]",
            },
        }),
    );
    let kubeconfig = mesh.dir.path("kubeconfig");
    let (_dash, api) = dashboard_with(
        &mesh,
        &[
            "--metrics-api-kube-auth",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
    )
    .await;
    let url = format!("https://{api}{BASE}");
    let call = |cert: Option<&weft_tests::site_cert::SiteCert>| {
        let mut args = vec![
            "-sS".to_string(),
            "-k".into(),
            "--max-time".into(),
            "10".into(),
        ];
        if let Some(c) = cert {
            args.extend(["--cert".into(), c.cert.display().to_string()]);
            args.extend(["--key".into(), c.key.display().to_string()]);
        }
        args.push(url.clone());
        async move {
            let out = tokio::process::Command::new("curl")
                .args(&args)
                .output()
                .await
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let body = call(Some(&aggregator)).await;
    assert!(
        body.contains("APIResourceList"),
        "the aggregator was refused: {body}"
    );
    for (who, cert) in [
        ("no certificate", None),
        ("a name not allowed", Some(&stranger)),
        ("another CA", Some(&forger)),
    ] {
        let body = call(cert).await;
        assert!(!body.contains("APIResourceList"), "{who} got in: {body}");
    }
}
