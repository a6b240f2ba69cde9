//! What retries hide: with world failing a fifth of its answers and the proxies retrying,
//! callers see almost every request succeed, while every attempt's success, shown beside
//! it on the API, in `weft stat` and on the dashboard's page, matches what world's own
//! instances counted; and each of world's endpoints shows the retries its failures cost,
//! together its service's.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use weft_tests::artifacts_dir;
use weft_tests::demo::{row, Demo};
use weft_tests::proxy::weft_bin;
use weft_tests::webdriver::Browser;

/// The span counted: the page's shortest window, so its figures cover the same minute.
const SPAN: Duration = Duration::from_secs(60);

/// Answers and failures on purpose, added up over world's instances.
async fn world_counts(worlds: &[SocketAddr]) -> (f64, f64) {
    let mut total = (0.0, 0.0);
    for w in worlds {
        let rsp = weft_tests::client::get(*w, "world", "/counts")
            .await
            .expect("world answers /counts");
        let v: Value = serde_json::from_slice(&rsp.body).expect("counts JSON");
        total.0 += v["answered"].as_f64().unwrap();
        total.1 += v["failed"].as_f64().unwrap();
    }
    total
}

/// World's service figures and the instances over `window`, read between the same two
/// scrapes: a scrape in between would move one window and not the other.
async fn same_round(demo: &Demo, window: f64) -> (Value, Value) {
    let last = |v: Value| v["series"].as_array()?.last()?["t"].as_f64();
    weft_tests::eventually(
        "a round without a scrape",
        Duration::from_secs(10),
        || async {
            let before = last(demo.api("/api/summary").await)?;
            let services = demo.api(&format!("/api/services?window={window}")).await;
            let instances = demo.api(&format!("/api/instances?window={window}")).await;
            let after = last(demo.api("/api/summary").await)?;
            let world = row(&services["services"], "service", "world")["stats"].clone();
            (before == after).then_some((world, instances))
        },
    )
    .await
}

/// Waits for the dashboard's next scrape and returns its time: counts read right after it
/// line up with the dashboard's window boundary.
async fn next_scrape(demo: &Demo) -> f64 {
    let last = |v: Value| v["series"].as_array()?.last()?["t"].as_f64();
    let before = last(demo.api("/api/summary").await).unwrap_or(0.0);
    weft_tests::eventually("the next scrape", Duration::from_secs(10), || async {
        let t = last(demo.api("/api/summary").await)?;
        (t > before).then_some(t)
    })
    .await
}

async fn stat(demo: &Demo, args: &[&str]) -> String {
    let out = tokio::process::Command::new(weft_bin())
        .arg("stat")
        .args(args)
        .args(["--dashboard", &format!("http://{}", demo.dashboard)])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn pct(text: &str) -> f64 {
    text.trim_end_matches('%')
        .parse::<f64>()
        .unwrap_or_else(|_| panic!("not a percentage: {text:?}"))
        / 100.0
}

/// A latency as `weft stat` and the page print it: two significant digits, whole from
/// 10 ms up.
fn follows_the_precision_rule(text: &str) -> bool {
    let n = text.trim_end_matches("ms").trim();
    let Ok(v) = n.parse::<f64>() else {
        return false;
    };
    let decimals = n.split_once('.').map_or(0, |(_, d)| d.len());
    let want = match v {
        v if v >= 9.95 => 0,
        v if v >= 0.995 => 1,
        v if v >= 0.0995 => 2,
        _ => 3,
    };
    decimals == want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_hide_world_failures_that_actual_success_shows_as_world_counted_them() {
    let demo = Demo::start(
        22,
        &[
            "--rps",
            "20",
            "--world-failure-rate",
            "0.2",
            "--retries",
            "--scrape-interval",
            "1s",
        ],
    )
    .await;
    let worlds: Vec<SocketAddr> = demo
        .nodes
        .iter()
        .flat_map(|n| n.apps.iter().filter(|(a, _)| a == "world").map(|(_, a)| *a))
        .collect();
    assert_eq!(worlds.len(), 3, "{}", demo.banner);
    weft_tests::eventually(
        "world's attempts on the API",
        Duration::from_secs(30),
        || async {
            let s = demo.api("/api/services?window=60").await;
            let world = s["services"]
                .as_array()?
                .iter()
                .find(|r| r["service"] == "world")?;
            (world["stats"]["attempts"].as_f64()? > 0.0).then_some(())
        },
    )
    .await;
    let browser = Browser::start().await;
    browser.goto(&format!("http://{}/", demo.dashboard)).await;
    browser
        .wait_for(
            "world's card rendered",
            "return document.querySelector('.service[data-service=world] .actual-success-rate') !== null",
        )
        .await;

    // Count a minute, between two of the dashboard's scrapes.
    let t0 = next_scrape(&demo).await;
    let before = world_counts(&worlds).await;
    tokio::time::sleep(SPAN - Duration::from_millis(500)).await;
    let t1 = next_scrape(&demo).await;
    let after = world_counts(&worlds).await;
    let (answered, failed) = (after.0 - before.0, after.1 - before.1);
    assert!(answered > 500.0, "world answered only {answered}");
    let counted = 1.0 - failed / answered;
    // Points after t0, up to t1: what the proxies counted between the two scrapes.
    let window = t1 - t0 - 0.01;

    let services = demo.api(&format!("/api/services?window={window}")).await;
    let world = &row(&services["services"], "service", "world")["stats"];
    let effective = world["success_rate"].as_f64().unwrap();
    let actual = world["actual_success_rate"].as_f64().unwrap();
    println!(
        "world over {window:.1}s: answered {answered}, failed {failed} ({:.2} % counted), \
         effective {:.2} %, actual {:.2} %, {} retries/s, {} refused",
        counted * 100.0,
        effective * 100.0,
        actual * 100.0,
        world["retry_rps"],
        world["budget_refusals"],
    );
    assert!(effective >= 0.97, "effective success {effective}");
    assert!(
        counted < 0.9,
        "world failed too rarely to show anything: {counted}"
    );
    assert!(
        (actual - counted).abs() <= 0.01,
        "actual {actual} vs world's own count {counted}"
    );
    assert!(world["retry_rps"].as_f64().unwrap() > 1.0, "{world}");
    assert!(world["budget_refusals"].as_f64().is_some(), "{world}");
    let attempts = world["attempts"].as_f64().unwrap();
    assert!(
        (attempts - answered).abs() <= answered * 0.02,
        "{attempts} attempts vs {answered} answers"
    );

    // The instances: each of world's endpoints has its attempts and the retries that
    // followed its failures (every one fails a fifth of the time, so each has some), and
    // together they make up world's retries. Each retry is counted against its service
    // and its endpoint one after the other, and both are rendered in the same scrape, so
    // the two only part by a retry made while a proxy rendered, at either end of the
    // window: allow two per proxy. Both are read from the same round of scrapes.
    let (world, instances) = same_round(&demo, window).await;
    let world = &world;
    let mut endpoint_retry_rps = 0.0;
    let mut endpoint_refusals = 0.0;
    for w in &worlds {
        let ep = &row(&instances["endpoints"], "endpoint", &w.to_string())["stats"];
        let a = ep["actual_success_rate"].as_f64().unwrap();
        assert!((a - counted).abs() <= 0.06, "{w}: actual {a} vs {counted}");
        let r = ep["retry_rps"].as_f64().unwrap();
        assert!(r > 0.0, "{w}: {ep}");
        endpoint_retry_rps += r;
        endpoint_refusals += ep["budget_refusals"].as_f64().unwrap();
    }
    let slack = 2.0 * demo.nodes.len() as f64;
    let service_retries = world["retry_rps"].as_f64().unwrap() * window;
    let endpoint_retries = endpoint_retry_rps * window;
    println!(
        "world's retries over {window:.1}s: {service_retries:.1} by service, \
         {endpoint_retries:.1} by endpoint; refusals {} and {endpoint_refusals}",
        world["budget_refusals"]
    );
    assert!(
        (service_retries - endpoint_retries).abs() <= slack,
        "world's endpoints' retries {endpoint_retries} vs world's {service_retries}"
    );
    assert!(
        (world["budget_refusals"].as_f64().unwrap() - endpoint_refusals).abs() <= slack,
        "world's endpoints' refusals {endpoint_refusals} vs {world}"
    );
    for n in instances["nodes"].as_array().unwrap() {
        assert!(n["stats"]["retry_rps"].as_f64().unwrap() > 0.0, "{n}");
    }

    // `weft stat`, as JSON and as the wide table (read a scrape or two later).
    let window_arg = format!("{window}s");
    let json: Value =
        serde_json::from_str(&stat(&demo, &["--window", &window_arg, "-o", "json"]).await).unwrap();
    let w = row(&json, "name", "world");
    assert!(w["success_rate"].as_f64().unwrap() >= 0.97, "{w}");
    let a = w["actual_success_rate"].as_f64().unwrap();
    assert!(
        (a - counted).abs() <= 0.01,
        "stat -o json: actual {a} vs {counted}"
    );
    assert!(w["retry_rps"].as_f64().unwrap() > 1.0, "{w}");
    let table = stat(&demo, &["--window", &window_arg, "-o", "wide"]).await;
    println!("{table}");
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "SERVICE",
            "EFFECTIVE_SUCCESS",
            "ACTUAL_SUCCESS",
            "RPS",
            "RETRY_RPS",
            "BUDGET_REFUSED",
            "LATENCY_P50",
            "LATENCY_P95",
            "LATENCY_P99"
        ]
    );
    let cells: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("world "))
        .expect("world's row")
        .split_whitespace()
        .collect();
    assert!(pct(cells[1]) >= 0.97, "{cells:?}");
    assert!(
        (pct(cells[2]) - counted).abs() <= 0.01,
        "{cells:?} vs {counted}"
    );
    assert!(
        cells[4].ends_with("rps") && cells[5].parse::<u64>().is_ok(),
        "{cells:?}"
    );
    for latency in &cells[6..] {
        assert!(follows_the_precision_rule(latency), "{cells:?}");
    }
    let by_instance = stat(
        &demo,
        &["--window", &window_arg, "--by", "instance", "-o", "wide"],
    )
    .await;
    let endpoint: Vec<&str> = by_instance
        .lines()
        .find(|l| l.starts_with(&worlds[0].to_string()))
        .expect("a world endpoint's row")
        .split_whitespace()
        .collect();
    // An endpoint's name is two words (address and service); then its retries, not `-`.
    let retried = endpoint[5]
        .strip_suffix("rps")
        .and_then(|r| r.parse::<f64>().ok());
    assert!(
        retried.is_some_and(|r| r > 0.0) && endpoint[6].parse::<u64>().is_ok(),
        "{by_instance}"
    );

    // The page: its one-minute window covers the minute counted, give or take a refresh.
    let page = browser
        .wait_for(
            "the page refreshed after the count",
            &format!(
                "if (Number(document.body.dataset.updated) < {}) return null;
                 const w = document.querySelector('.service[data-service=world]');
                 return {{
                     effective: w.querySelector('.success-rate').textContent,
                     actual: w.querySelector('.actual-success-rate').textContent,
                     retries: w.querySelector('.retry-rps').textContent,
                     refused: w.querySelector('.budget-refusals').textContent,
                     p50: w.querySelector('.p50').textContent,
                     endpointActual: Array.from(document.querySelectorAll('#endpoints-table tbody tr'))
                         .filter(r => r.dataset.service === 'world')
                         .map(r => r.querySelector('.actual-success-rate').textContent),
                     endpointRetries: Array.from(document.querySelectorAll('#endpoints-table tbody tr'))
                         .filter(r => r.dataset.service === 'world')
                         .map(r => [r.querySelector('.retry-rps').textContent,
                                    r.querySelector('.budget-refusals').textContent]),
                     chartLines: Array.from(w.querySelectorAll('.chart.success path[data-name]')).map(p => p.dataset.name),
                 }};",
                (t1 * 1000.0) as u64
            ),
        )
        .await;
    println!("{page}");
    browser
        .screenshot(&artifacts_dir().join("dashboard-retries.png"))
        .await;
    assert!(pct(page["effective"].as_str().unwrap()) >= 0.97, "{page}");
    let shown = pct(page["actual"].as_str().unwrap());
    assert!(
        (shown - counted).abs() <= 0.01,
        "page: actual {shown} vs {counted}"
    );
    assert!(page["retries"].as_str().unwrap().ends_with("rps"), "{page}");
    assert!(
        page["refused"].as_str().unwrap().parse::<u64>().is_ok(),
        "{page}"
    );
    assert!(
        follows_the_precision_rule(page["p50"].as_str().unwrap().replace(' ', "").as_str()),
        "{page}"
    );
    assert_eq!(
        page["endpointActual"].as_array().unwrap().len(),
        3,
        "{page}"
    );
    for cells in page["endpointRetries"].as_array().unwrap() {
        let (retries, refused) = (cells[0].as_str().unwrap(), cells[1].as_str().unwrap());
        assert!(
            retries.ends_with("rps") && refused.parse::<u64>().is_ok(),
            "{page}"
        );
    }
    assert_eq!(
        page["chartLines"],
        serde_json::json!(["effective", "actual"])
    );
    drop(browser);
    assert!(demo.stop().await.success());
}
