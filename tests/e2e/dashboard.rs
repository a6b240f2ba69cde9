//! The dashboard as people and their tools see it: headless Chromium on the web UI, a real
//! Prometheus behind `weft dashboard --prometheus`, and the Grafana dashboard's queries.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use weft_tests::demo::{api, row, start_dashboard, Demo};
use weft_tests::mesh::Mesh;
use weft_tests::webdriver::Browser;
use weft_tests::{artifacts_dir, TempDir};

/// A demo whose world fails 10 % of the time, scraped every second.
const FAILING_DEMO: &[&str] = &[
    "--rps",
    "20",
    "--world-failure-rate",
    "0.1",
    "--scrape-interval",
    "1s",
];

fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn pct(text: &str) -> f64 {
    text.trim_end_matches('%')
        .parse::<f64>()
        .unwrap_or_else(|_| panic!("not a percentage: {text:?}"))
        / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_every_section_service_and_instance_and_its_selectors_filter() {
    let demo = Demo::start(11, FAILING_DEMO).await;
    weft_tests::eventually(
        "both services on the API",
        Duration::from_secs(20),
        || async {
            let s = demo.api("/api/services?window=60").await;
            (s["services"].as_array()?.len() == 2).then_some(())
        },
    )
    .await;
    let browser = Browser::start().await;
    browser.goto(&format!("http://{}/", demo.dashboard)).await;
    browser
        .wait_for(
            "services rendered",
            "return document.querySelectorAll('#services .service').length === 2 && document.querySelectorAll('#endpoints-table tbody tr').length === 6",
        )
        .await;
    // Let the charts draw lines (two points at least) before reading and the screenshot.
    browser
        .wait_for(
            "charts with lines",
            "return Array.from(document.querySelectorAll('#top-volume-chart path[data-name]')).some(p => p.getAttribute('d').includes('L'));",
        )
        .await;
    let page = browser
        .eval(
            "return {
                headings: Array.from(document.querySelectorAll('section:not([hidden]) h2')).map(h => h.firstChild.textContent.trim()),
                services: Array.from(document.querySelectorAll('#services .service')).map(s => s.dataset.service),
                nodes: Array.from(document.querySelectorAll('#nodes-table tbody tr')).map(r => r.dataset.instance),
                endpoints: Array.from(document.querySelectorAll('#endpoints-table tbody tr')).map(r => r.dataset.instance),
                topSuccess: document.getElementById('top-success-rate').textContent,
                topProxies: document.getElementById('top-proxies').textContent,
                topServices: document.getElementById('top-services').textContent,
                worldSuccess: document.querySelector('.service[data-service=world] .success-rate').textContent,
                worldCharts: document.querySelectorAll('.service[data-service=world] svg path[data-name]').length,
                status: document.getElementById('status').textContent,
            };",
        )
        .await;
    browser
        .screenshot(&artifacts_dir().join("dashboard.png"))
        .await;
    let summary = demo.api("/api/summary?window=60").await;
    let services = demo.api("/api/services?window=60").await;

    assert_eq!(
        page["headings"],
        serde_json::json!(["TOP LINE", "SERVICE METRICS", "PER-INSTANCE METRICS"])
    );
    let shown: BTreeSet<_> = page["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(shown, BTreeSet::from(["hello", "world"]));
    let nodes: Vec<_> = page["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes, ["node-1", "node-2", "node-3"]);
    let mut want_eps: Vec<String> = demo
        .nodes
        .iter()
        .flat_map(|n| n.apps.iter().map(|(_, a)| a.to_string()))
        .collect();
    want_eps.sort();
    let mut eps: Vec<String> = page["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    eps.sort();
    assert_eq!(eps, want_eps);
    assert_eq!(page["topProxies"], "3 / 3");
    assert_eq!(page["topServices"], "2");
    assert!(
        page["status"].as_str().unwrap().starts_with("live"),
        "{}",
        page["status"]
    );
    assert!(
        page["worldCharts"].as_u64().unwrap() >= 6,
        "world's charts have lines"
    );
    // The page's figures are the API's (read a moment apart, so allow for the drift).
    let api_top = summary["stats"]["success_rate"].as_f64().unwrap();
    assert!(
        (pct(page["topSuccess"].as_str().unwrap()) - api_top).abs() < 0.03,
        "{page} vs {api_top}"
    );
    let api_world = row(&services["services"], "service", "world")["stats"]["success_rate"]
        .as_f64()
        .unwrap();
    assert!((pct(page["worldSuccess"].as_str().unwrap()) - api_world).abs() < 0.03);

    // Choosing a service filters every section to it.
    browser.click("#service-select option[value=world]").await;
    let filtered = browser
        .wait_for(
            "filtered to world",
            "const s = Array.from(document.querySelectorAll('#services .service')).map(e => e.dataset.service);
             const rows = Array.from(document.querySelectorAll('#endpoints-table tbody tr')).map(r => r.dataset.service);
             const lines = Array.from(document.querySelectorAll('#instance-volume-chart path[data-name]')).map(p => p.dataset.name);
             if (s.length !== 1 || rows.some(r => r !== 'world') || rows.length !== 3) return null;
             return { services: s, rows, lines, scope: document.getElementById('top-scope').textContent };",
        )
        .await;
    assert_eq!(filtered["services"], serde_json::json!(["world"]));
    assert_eq!(filtered["scope"], "service world");
    let world_eps: BTreeSet<String> = demo
        .nodes
        .iter()
        .flat_map(|n| {
            n.apps
                .iter()
                .filter(|(a, _)| a == "world")
                .map(|(_, addr)| addr.to_string())
        })
        .collect();
    let lines: BTreeSet<String> = filtered["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(lines, world_eps, "instance charts show world's endpoints");

    // Choosing an instance narrows to it.
    let one = world_eps.iter().next().unwrap().clone();
    browser
        .click(&format!("#instance-select option[value='{one}']"))
        .await;
    let narrowed = browser
        .wait_for(
            "filtered to one instance",
            "const rows = Array.from(document.querySelectorAll('#endpoints-table tbody tr')).map(r => r.dataset.instance);
             return rows.length === 1 ? { rows, scope: document.getElementById('top-scope').textContent } : null;",
        )
        .await;
    assert_eq!(narrowed["rows"], serde_json::json!([one]));
    assert_eq!(narrowed["scope"], format!("instance {one}"));
    browser
        .screenshot(&artifacts_dir().join("dashboard-filtered.png"))
        .await;
    drop(browser);
    assert!(demo.stop().await.success());
}

async fn start_prometheus(
    targets: &[String],
    dir: &TempDir,
) -> (tokio::process::Child, std::net::SocketAddr) {
    let shipped = std::fs::read_to_string(repo_file("deploy/prometheus/prometheus.yml")).unwrap();
    // Same file, pointed at this test's proxies instead of the default demo's.
    let mut config = String::new();
    for line in shipped.lines() {
        if line.trim_start().starts_with("- 127.0.0.") {
            continue;
        }
        config.push_str(line);
        config.push('\n');
        if line.trim() == "- targets:" {
            for t in targets {
                config.push_str(&format!("          - {t}\n"));
            }
        }
    }
    let path = dir.path("prometheus.yml");
    std::fs::write(&path, &config).unwrap();
    let addr = weft_tests::free_addr("127.0.0.1");
    let child = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus (the test command installs it)");
    weft_tests::eventually("prometheus ready", Duration::from_secs(30), || async {
        let r = weft_tests::client::get(addr, "localhost", "/-/ready")
            .await
            .ok()?;
        (r.status == 200).then_some(())
    })
    .await;
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_reads_the_same_numbers_from_a_real_prometheus() {
    let demo = Demo::start(12, FAILING_DEMO).await;
    let dir = TempDir::new("prometheus");
    let targets: Vec<String> = demo.nodes.iter().map(|n| n.admin.to_string()).collect();
    let (_prom, prom) = start_prometheus(&targets, &dir).await;
    let (_dash, via_prom) = start_dashboard(&["--prometheus", &format!("http://{prom}")]).await;

    tokio::time::sleep(Duration::from_secs(70)).await;
    let direct = demo.api("/api/services?window=60").await;
    let through = api(via_prom, "/api/services?window=60").await;
    let summary = api(via_prom, "/api/summary?window=60").await;
    assert_eq!(summary["proxies_up"], 3, "{summary}");
    for service in ["hello", "world"] {
        let a = &row(&direct["services"], "service", service)["stats"];
        let b = &row(&through["services"], "service", service)["stats"];
        let (ra, rb) = (a["rps"].as_f64().unwrap(), b["rps"].as_f64().unwrap());
        let (sa, sb) = (
            a["success_rate"].as_f64().unwrap(),
            b["success_rate"].as_f64().unwrap(),
        );
        println!(
            "{service}: direct {ra:.1} rps {:.2}%, via Prometheus {rb:.1} rps {:.2}%",
            sa * 100.0,
            sb * 100.0
        );
        assert!((ra - rb).abs() <= ra * 0.1, "{service} rps {ra} vs {rb}");
        assert!((sa - sb).abs() <= 0.02, "{service} success {sa} vs {sb}");
    }
    assert!(demo.stop().await.success());
}

#[tokio::test]
async fn the_grafana_dashboard_is_valid_and_uses_only_exported_metrics() {
    let text = std::fs::read_to_string(repo_file("deploy/grafana/weft-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let rows: Vec<&str> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "TOP LINE",
            "SERVICE METRICS: $service",
            "PER-INSTANCE METRICS"
        ]
    );
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(
        vars.contains(&"service") && vars.contains(&"instance"),
        "{vars:?}"
    );

    // Every weft_ name in a query must be one a real proxy exports after real traffic.
    let mesh = Mesh::start().await;
    weft_tests::client::curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
    let exported: BTreeSet<String> = weft_tests::proxy::metric_names(&mesh.a.metrics().await);
    let mut used = BTreeSet::new();
    let mut exprs: Vec<String> = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            exprs.push(q.to_string());
        }
    }
    for e in &exprs {
        for (i, _) in e.match_indices("weft_") {
            let name: String = e[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            used.insert(name);
        }
    }
    assert!(used.len() >= 3, "{used:?}");
    for name in &used {
        assert!(
            exported.contains(name),
            "{name} is not exported; proxies export {exported:?}"
        );
    }

    // The shipped Prometheus config is valid.
    let out = std::process::Command::new("promtool")
        .args(["check", "config"])
        .arg(repo_file("deploy/prometheus/prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn the_dashboard_finds_proxies_through_a_dns_name() {
    // On Kubernetes the name is the proxies' headless Service; here, `localhost`.
    let dir = TempDir::new("dash-dns");
    let discovery = dir.path("discovery.toml");
    weft_tests::discovery::write(&discovery, &[]);
    let proxy = weft_tests::proxy::WeftProxy::start("127.0.0.1", &discovery).await;
    let name = format!("localhost:{}", proxy.admin.port());
    let (_dash, addr) = start_dashboard(&["--proxies-dns", &name]).await;
    let summary =
        weft_tests::eventually("proxy found by name", Duration::from_secs(10), || async {
            let s = api(addr, "/api/summary").await;
            (s["proxies_up"] == 1).then_some(s)
        })
        .await;
    println!("{summary}");
}

/// A label value is data: a service named like markup is shown as text in the page, and no
/// script in it runs. A proxy that answers with more than the dashboard reads is shown down,
/// not held in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_value_is_shown_as_text_and_an_oversized_scrape_is_refused() {
    const HOSTILE: &str = "<img src=x onerror=\"window.pwned=1\">";
    let hostile = fake_proxy(|n| {
        let service = HOSTILE.replace('"', "\\\"");
        format!(
            "weft_proxy_info{{node=\"evil\",version=\"0\"}} 1\n\
             weft_requests_total{{direction=\"outbound\",service=\"{service}\",endpoint=\"127.0.0.9:80\"}} {n}\n\
             weft_responses_total{{direction=\"outbound\",service=\"{service}\",endpoint=\"127.0.0.9:80\",status_code=\"200\",classification=\"success\",error=\"\"}} {n}\n"
        )
    })
    .await;
    // 24 MiB of comments: past the 16 MiB the dashboard reads.
    let huge = fake_proxy(|_| "# padding\n".repeat(24 * 1024 * 1024 / 10)).await;
    let (_dash, addr) = start_dashboard(&[
        "--proxy",
        &hostile.to_string(),
        "--proxy",
        &huge.to_string(),
    ])
    .await;
    let summary = weft_tests::eventually(
        "the hostile service listed",
        Duration::from_secs(20),
        || async {
            let s = api(addr, "/api/services?window=60").await;
            (s["services"].as_array()?.len() == 1).then_some(s)
        },
    )
    .await;
    assert_eq!(summary["services"][0]["service"], HOSTILE, "{summary}");
    let proxies = api(addr, "/api/summary").await;
    let down: Vec<_> = proxies["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["up"] == false)
        .map(|p| p["target"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(down, [huge.to_string()], "{proxies}");

    let browser = Browser::start().await;
    browser.goto(&format!("http://{addr}/")).await;
    browser
        .wait_for(
            "the service rendered",
            "return document.querySelectorAll('#services .service h3').length === 1",
        )
        .await;
    let page = browser
        .eval(
            "return {
                heading: document.querySelector('#services .service h3').textContent,
                images: document.querySelectorAll('#services img').length,
                pwned: window.pwned === 1,
            };",
        )
        .await;
    assert_eq!(page["heading"], HOSTILE, "{page}");
    assert_eq!(page["images"], 0, "{page}");
    assert_eq!(page["pwned"], false, "{page}");
}

/// A stand-in for a proxy's admin listener: `/metrics` answers `body(n)` at the n-th scrape.
async fn fake_proxy(body: impl Fn(u64) -> String + Send + Sync + 'static) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = std::sync::Arc::new(body);
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut conn, _)) = listener.accept().await {
            n += 1;
            let text = body(n);
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = conn.read(&mut head).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    text.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
                let _ = conn.write_all(text.as_bytes()).await;
            });
        }
    });
    addr
}

/// The demo's canary, shifted as its banner says, while the dashboard's splits table and
/// `weft stat` follow the share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_canary_is_shifted_as_its_banner_says_and_the_split_shows() {
    let demo = Demo::start(
        17,
        &["--rps", "40", "--scrape-interval", "1s", "--world-v2"],
    )
    .await;
    let line = demo
        .banner
        .lines()
        .find(|l| l.trim_start().starts_with("weft shift world --to world-v2"))
        .unwrap_or_else(|| panic!("no shift line in the banner:\n{}", demo.banner));
    let args: Vec<&str> = line
        .split('#')
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .collect();
    let browser = Browser::start().await;
    browser.goto(&format!("http://{}/", demo.dashboard)).await;
    let v1_first = browser
        .wait_for(
            "the split shown, all to world-v1",
            "const rows = Array.from(document.querySelectorAll('#splits-table tbody tr'));
             const v1 = rows.find(r => r.dataset.backend === 'world-v1');
             if (document.getElementById('traffic-splits').hidden || !v1) return null;
             const share = v1.querySelector('.share').textContent;
             return share === '100%' ? share : null;",
        )
        .await;
    assert_eq!(v1_first, "100%");
    let mut shift = args.clone();
    shift.extend(["--steps", "50", "--interval", "3s", "--judge-every", "1s"]);
    shift.extend(["--window", "5s", "--min-requests", "20"]);
    // What this checks is the banner and the split's display; latency judgement on a
    // loaded two-core machine is the shift tests' business.
    shift.extend(["--max-p99-ratio", "20"]);
    let run = weft_tests::split::run_weft(&shift, Duration::from_secs(90)).await;
    assert!(run.ok && run.out.contains("promoted"), "{}", run.out);
    // The split's live share moves to world-v2 on the page (over its one-minute window) …
    browser
        .wait_for(
            "world-v2's share grows on the page",
            "const v2 = Array.from(document.querySelectorAll('#splits-table tbody tr')).find(r => r.dataset.backend === 'world-v2');
             return v2 && parseFloat(v2.querySelector('.share').textContent) >= 25 ? true : null;",
        )
        .await;
    // … and in `weft stat`, below the services, over its last five seconds.
    let dashboard = format!("http://{}", demo.dashboard);
    let row = weft_tests::eventually(
        "weft stat shows world-v2 with the traffic",
        Duration::from_secs(30),
        || async {
            let stat = tokio::process::Command::new(weft_tests::proxy::weft_bin())
                .args(["stat", "--window", "5s", "--dashboard", &dashboard])
                .output()
                .await
                .ok()?;
            let table = String::from_utf8_lossy(&stat.stdout).into_owned();
            let v2_row = table
                .lines()
                .find(|l| l.starts_with("world/split") && l.contains("world-v2"))?
                .to_string();
            let share: f64 = v2_row
                .split_whitespace()
                .nth(2)?
                .trim_end_matches('%')
                .parse()
                .ok()?;
            (share >= 90.0).then_some(table)
        },
    )
    .await;
    println!("{row}");
    browser
        .screenshot(&artifacts_dir().join("dashboard-splits.png"))
        .await;
}
