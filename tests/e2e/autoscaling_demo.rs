//! `weft demo --autoscale`, no Kubernetes: world's instances follow a step in load as an
//! HPA would set them, read from the dashboard's own figures, and the traffic generator
//! counts no failed request while they come and go.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use weft_tests::artifacts_dir;
use weft_tests::client::{get, send_h1};
use weft_tests::demo::Demo;
use weft_tests::webdriver::Browser;

/// world's ready instances as the dashboard's API has them (what its chart draws).
async fn instances(demo: &Demo) -> Option<f64> {
    let services = demo.api("/api/services?service=world&window=60").await;
    services["services"][0]["instances"].as_f64()
}

/// The traffic generator's own rate and counts.
async fn traffic(demo: &Demo) -> serde_json::Value {
    let rsp = get(demo.traffic_control, "demo", "/traffic")
        .await
        .expect("traffic control answers");
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    serde_json::from_slice(&rsp.body).expect("JSON")
}

async fn set_rate(demo: &Demo, rps: &str) -> (u16, String) {
    let req = http::Request::post(format!("/traffic?rps={rps}"))
        .header("host", "demo")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let rsp = send_h1(demo.traffic_control, req)
        .await
        .expect("POST /traffic");
    (rsp.status, rsp.text())
}

/// Polls world's count every half second until `done` holds of it, up to `within`; keeps
/// every change seen, with the seconds since `since`.
async fn until(
    demo: &Demo,
    what: &str,
    within: Duration,
    since: Instant,
    seen: &mut Vec<(f64, f64)>,
    done: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(n) = instances(demo).await {
            if seen.last().is_none_or(|(_, last)| *last != n) {
                seen.push((since.elapsed().as_secs_f64(), n));
            }
            if done(n) {
                return since.elapsed().as_secs_f64();
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; world's instances over time: {seen:?}\n{}",
            demo.stderr()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_follows_a_step_in_load_up_and_back_down_with_no_failed_request() {
    let demo = Demo::start(
        41,
        &[
            "--rps",
            "10",
            "--world-instances",
            "1",
            "--scrape-interval",
            "1s",
            "--autoscale",
            "world=10rps,min=1,max=10",
            "--autoscale-interval",
            "3s",
            "--autoscale-stabilization",
            "20s",
        ],
    )
    .await;
    assert!(
        demo.banner
            .contains("autoscale: world to 10 requests/s per instance, 1 to 10 instances"),
        "{}",
        demo.banner
    );
    let start = Instant::now();
    let mut seen = Vec::new();

    // One world instance at first: 10 requests/s on it is the target, within the tolerance.
    until(
        &demo,
        "world at 1 instance",
        Duration::from_secs(30),
        start,
        &mut seen,
        |n| n == 1.0,
    )
    .await;
    // Settled: it stays at 1 for a few decisions.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(instances(&demo).await, Some(1.0), "{seen:?}");
    let before = traffic(&demo).await;
    assert_eq!(before["failed"], 0, "{before}");

    // Bad rates are refused, and change nothing.
    for bad in ["lots", "-5", "20000"] {
        let (status, body) = set_rate(&demo, bad).await;
        assert_eq!(status, 400, "rps={bad}: {body}");
        assert!(body.contains("rps"), "{body}");
    }
    assert_eq!(traffic(&demo).await["rps"], 10.0);

    // A step to 50 requests/s: 5 instances of 10 each.
    let (status, body) = set_rate(&demo, "50").await;
    assert_eq!(status, 200, "{body}");
    let step_up = Instant::now();
    let mut up = Vec::new();
    let took = until(
        &demo,
        "world at 5 instances",
        Duration::from_secs(60),
        step_up,
        &mut up,
        |n| n >= 5.0,
    )
    .await;
    println!("5 instances {took:.1}s after the step up: {up:?}");
    // It holds there (50 per second on 5 is the target: within the tolerance).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let held = instances(&demo).await.unwrap();
    assert!((5.0..=6.0).contains(&held), "{held} after settling; {up:?}");
    let during = traffic(&demo).await;
    assert_eq!(during["failed"], 0, "{during}");

    // Back to 10: down only once the higher proposals have left the 20 s window.
    let (status, body) = set_rate(&demo, "10").await;
    assert_eq!(status, 200, "{body}");
    let step_down = Instant::now();
    let mut down = Vec::new();
    let first_down = until(
        &demo,
        "world below 5",
        Duration::from_secs(60),
        step_down,
        &mut down,
        |n| n < held,
    )
    .await;
    let back = until(
        &demo,
        "world back at 1 or 2",
        Duration::from_secs(90),
        step_down,
        &mut down,
        |n| n <= 2.0,
    )
    .await;
    println!(
        "first removal {first_down:.1}s after the step down, at 1 or 2 after {back:.1}s: {down:?}"
    );
    assert!(
        first_down >= 18.0,
        "down before the stabilisation window passed: {down:?}"
    );

    // The page draws the count over time; the screenshot shows the step up and back.
    let browser = Browser::start().await;
    browser.goto(&format!("http://{}/", demo.dashboard)).await;
    let page = browser
        .wait_for(
            "world's instance chart",
            "const w = document.querySelector('.service[data-service=world]');
             const path = w && w.querySelector('.chart.instances path[data-name=instances]');
             if (!path || !path.getAttribute('d').includes('L')) return null;
             return { now: w.querySelector('.value.instances').textContent,
                      caption: w.querySelector('.instances-figure figcaption').textContent,
                      hidden: w.querySelector('.instances-figure').hidden };",
        )
        .await;
    browser
        .screenshot(&artifacts_dir().join("dashboard-autoscaling.png"))
        .await;
    assert_eq!(page["hidden"], false, "{page}");
    assert!(
        ["1", "2"].contains(&page["now"].as_str().unwrap()),
        "{page}"
    );
    let series = demo.api("/api/services?service=world&window=60").await["services"][0]
        ["instances_series"]
        .clone();
    let counts: Vec<f64> = series
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["instances"].as_f64().unwrap())
        .collect();
    assert!(
        counts.iter().any(|n| *n >= 5.0) && counts.last().is_some_and(|n| *n <= 2.0),
        "{counts:?}"
    );

    // Not one failed request while instances came and went.
    let after = traffic(&demo).await;
    println!("traffic: {after}");
    assert_eq!(after["failed"], 0, "{after}\n{}", demo.stderr());
    assert_eq!(after["skipped"], 0, "{after}");
    assert!(
        after["sent"].as_u64().unwrap() > before["sent"].as_u64().unwrap() + 1000,
        "{after}"
    );
    assert!(demo.stop().await.success());
}
