//! `weft tap` and `weft top` against a real demo: the rows and lines they print match the
//! requests the test itself sent and counted, and a filter no proxy can serve exits
//! non-zero with the proxies' reason.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use weft_tests::client::send_h1;
use weft_tests::demo::Demo;
use weft_tests::proxy::weft_bin;

/// How long the commands run before the test sends, for their subscriptions to stand.
const SETTLE: Duration = Duration::from_millis(1200);

/// Sends `n` GETs for hello through `proxy`, 10 at a time; returns the statuses.
async fn send(proxy: std::net::SocketAddr, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for batch in 0..n.div_ceil(10) {
        let calls: Vec<_> = (0..10.min(n - batch * 10))
            .map(|_| {
                tokio::spawn(async move {
                    let req = http::Request::get("http://hello/")
                        .header("host", "hello")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    send_h1(proxy, req).await.map_or(0, |r| r.status)
                })
            })
            .collect();
        for c in calls {
            statuses.push(c.await.unwrap());
        }
    }
    statuses
}

fn weft(args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(weft_bin());
    c.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

/// The cells of a `weft top` text row: columns are two or more spaces apart.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

async fn demo() -> Demo {
    let demo = Demo::start(
        23,
        &[
            "--rps",
            "0",
            "--world-failure-rate",
            "0.3",
            "--world-latency",
            "20ms",
            "--scrape-interval",
            "1s",
        ],
    )
    .await;
    // The dashboard taps the proxies that answered its last scrape.
    weft_tests::eventually(
        "every node up on the dashboard",
        Duration::from_secs(10),
        || async {
            let v = demo.api("/api/instances").await;
            let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
            (nodes.len() == 3 && nodes.iter().all(|n| n["up"] == true)).then_some(())
        },
    )
    .await;
    demo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_and_tap_show_exactly_the_requests_sent() {
    let demo = demo().await;
    let admins: Vec<String> = demo.nodes.iter().map(|n| n.admin.to_string()).collect();
    let entry = demo.nodes[0].outbound;

    // `weft top` straight from the proxies, not on a terminal: one table at the end.
    let mut top_args = vec!["top", "--direction", "outbound", "--rate", "3000"];
    for a in &admins {
        top_args.extend(["--proxy", a.as_str()]);
    }
    top_args.extend(["--duration", "3s"]);
    let top = weft(&top_args).spawn().unwrap();
    tokio::time::sleep(SETTLE).await;
    let sent = send(entry, 40).await;
    let out = tokio::time::timeout(Duration::from_secs(15), top.wait_with_output())
        .await
        .expect("weft top ends after its duration")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = sent.iter().filter(|&&s| s == 200).count();
    assert!(ok > 0 && ok < 40, "world fails 30 %: {sent:?}");

    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("SOURCE"), "{text}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("SOURCE")).count(),
        1,
        "{text}"
    );
    let rows: Vec<Vec<&str>> = lines[1..].iter().map(|l| cells(l)).collect();
    // SOURCE DIR DESTINATION METHOD PATH COUNT SUCCESS P50 P99 BEST WORST
    let hello: Vec<&Vec<&str>> = rows.iter().filter(|r| r[2] == "hello").collect();
    assert_eq!(hello.len(), 1, "one client, one row:\n{text}");
    let h = hello[0];
    assert_eq!(&h[1..5], ["out", "hello", "GET", "/"], "{text}");
    assert_eq!(h[5], "40", "{text}");
    let rate = format!("{:.2}%", ok as f64 * 100.0 / 40.0);
    assert_eq!(h[6], rate, "{text}");
    // Every answer waited for world's 20 ms.
    for cell in &h[7..11] {
        assert!(
            cell.ends_with("ms") || cell.ends_with('s'),
            "{cell}: {text}"
        );
        assert!(!cell.ends_with("µs"), "{cell}: {text}");
    }
    // Each hello instance called world once per request, through its own node's outbound.
    let world: u64 = rows
        .iter()
        .filter(|r| r[2] == "world")
        .map(|r| r[5].parse::<u64>().unwrap())
        .sum();
    assert_eq!(world, 40, "{text}");

    // `weft tap` through the dashboard, as JSON, stopping by itself after 3 events a request.
    let dashboard = format!("http://{}", demo.dashboard);
    let tap = weft(&[
        "tap",
        "hello",
        "--direction",
        "outbound",
        "--rate",
        "3000",
        "-o",
        "json",
        "--max-events",
        "30",
        "--dashboard",
        &dashboard,
    ])
    .spawn()
    .unwrap();
    tokio::time::sleep(SETTLE).await;
    let sent = send(entry, 10).await;
    let out = tokio::time::timeout(Duration::from_secs(15), tap.wait_with_output())
        .await
        .expect("weft tap stops after --max-events")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events.len(), 30, "{text}");
    for e in &events {
        assert_eq!(
            (&e["service"], &e["direction"], &e["method"], &e["path"]),
            (
                &Value::from("hello"),
                &Value::from("outbound"),
                &Value::from("GET"),
                &Value::from("/")
            ),
            "{e}"
        );
    }
    let mut ids: Vec<(String, u64)> = events
        .iter()
        .map(|e| (e["proxy"].to_string(), e["id"].as_u64().unwrap()))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "{text}");
    let kinds = |k: &str| events.iter().filter(|e| e["type"] == k).count();
    assert_eq!(
        (kinds("start"), kinds("headers"), kinds("end")),
        (10, 10, 10)
    );
    let ends_ok = events
        .iter()
        .filter(|e| e["type"] == "end" && e["status"] == 200 && e["success"] == true)
        .count();
    assert_eq!(
        ends_ok,
        sent.iter().filter(|&&s| s == 200).count(),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_no_proxy_can_serve_exits_non_zero_with_the_reason() {
    let demo = demo().await;
    let dashboard = format!("http://{}", demo.dashboard);
    let admin = demo.nodes[0].admin.to_string();
    for args in [
        vec!["tap", "wrold", "--dashboard", &dashboard],
        vec!["tap", "wrold", "--proxy", &admin],
        vec!["top", "wrold", "--proxy", &admin, "--duration", "5s"],
    ] {
        let out = tokio::time::timeout(Duration::from_secs(10), weft(&args).output())
            .await
            .expect("a refused tap ends at once")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr.contains("unknown service \"wrold\""),
            "{args:?}: {stderr}"
        );
    }
    // A bad flag is refused before anything connects.
    let out = weft(&[
        "tap",
        "--status",
        "6xx",
        "--dashboard",
        "http://127.0.0.1:1",
    ])
    .output()
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("invalid status \"6xx\""), "{stderr}");
}
