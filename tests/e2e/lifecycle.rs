//! Discovery changes apply within a second without dropping in-flight requests; bad edits
//! keep the last good state; the admin API answers; SIGTERM and /shutdown drain gracefully.

use std::time::{Duration, Instant};

use weft_tests::backend::Backend;
use weft_tests::client::curl;
use weft_tests::discovery::{self};
use weft_tests::mesh::{Mesh, NODE_B};
use weft_tests::proxy::WeftProxy;

#[tokio::test]
async fn discovery_changes_apply_within_a_second_without_dropping_in_flight_requests() {
    let mesh = Mesh::start().await;
    let next = Backend::start(NODE_B).await;
    let proxy = mesh.proxy_flag();
    let in_flight = {
        let proxy = proxy.clone();
        tokio::spawn(async move { curl(&["-x", &proxy, "http://world/slow?ms=1500"]).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let changed = Instant::now();
    discovery::write(&mesh.discovery, &[("world", vec![mesh.on_b(next.addr)])]);
    let took = weft_tests::eventually("new endpoint in use", Duration::from_secs(3), || async {
        let rsp = curl(&["-x", &proxy, "http://world/echo"]).await;
        (rsp.header("x-backend") == Some(next.addr.to_string().as_str())).then(|| changed.elapsed())
    })
    .await;
    println!("discovery change applied after {took:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let rsp = in_flight.await.unwrap();
    assert_eq!(rsp.status, 200, "in-flight request dropped: {}", rsp.text());
}

#[tokio::test]
async fn a_bad_edit_keeps_the_last_good_state_and_is_counted() {
    let mesh = Mesh::start().await;
    discovery::write_raw(
        &mesh.discovery,
        "[[services.world.endpoints]]\naddr = \"127.0.0.3:1\"\nbogus = 1\n",
    );
    weft_tests::eventually("error counted", Duration::from_secs(5), || async {
        (mesh.a.sample("weft_discovery_errors_total").await == Some(1.0)).then_some(())
    })
    .await;
    let rsp = curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
    assert_eq!(rsp.status, 200);
    let log = mesh.a.log();
    assert!(
        log.contains("discovery.toml:3:"),
        "log names file and line:\n{log}"
    );
}

#[tokio::test]
async fn a_configmap_style_symlink_swap_is_picked_up() {
    let dir = weft_tests::TempDir::new("configmap");
    let first = Backend::start(NODE_B).await;
    let second = Backend::start(NODE_B).await;
    // Kubernetes' layout: file -> ..data/file, ..data -> ..<timestamp>/
    let write_version = |name: &str, addr| {
        let d = dir.path(name);
        std::fs::create_dir_all(&d).unwrap();
        discovery::write(
            &d.join("discovery.toml"),
            &[("world", vec![discovery::Ep::direct(addr)])],
        );
    };
    write_version("..v1", first.addr);
    std::os::unix::fs::symlink("..v1", dir.path("..data")).unwrap();
    std::os::unix::fs::symlink("..data/discovery.toml", dir.path("discovery.toml")).unwrap();
    let proxy = WeftProxy::start(NODE_B, &dir.path("discovery.toml")).await;
    proxy.wait_endpoints("world", &[first.addr]).await;
    write_version("..v2", second.addr);
    std::os::unix::fs::symlink("..v2", dir.path("..data_tmp")).unwrap();
    std::fs::rename(dir.path("..data_tmp"), dir.path("..data")).unwrap();
    proxy.wait_endpoints("world", &[second.addr]).await;
}

#[tokio::test]
async fn the_admin_api_answers() {
    let mesh = Mesh::start().await;
    assert_eq!(mesh.a.admin_get("/live").await.0, 200);
    assert_eq!(mesh.a.admin_get("/ready").await.0, 200);
    let (status, config) = mesh.a.admin_get("/config").await;
    assert_eq!(status, 200);
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        config["outbound"]["listen"],
        format!("{}:0", weft_tests::mesh::NODE_A)
    );
    assert_eq!(config["http"]["connect_timeout"], "1s");
    let (_, eps) = mesh.b.admin_get("/endpoints").await;
    let eps: serde_json::Value = serde_json::from_str(&eps).unwrap();
    let world = &eps["services"]["world"]["endpoints"][0];
    assert_eq!(world["addr"], mesh.world.addr.to_string());
    assert_eq!(world["local"], true);
    assert_eq!(world["state"], "ready");
    assert_eq!(mesh.a.admin_get("/shutdown").await.0, 405);
    assert_eq!(mesh.a.admin_get("/nope").await.0, 404);
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let mut mesh = Mesh::start().await;
    let proxy = mesh.proxy_flag();
    let in_flight =
        tokio::spawn(async move { curl(&["-x", &proxy, "http://world/slow?ms=1500"]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    mesh.a.sigterm();
    // Not ready any more, yet the node's apps, which have no other proxy, are still served
    // while it drains…
    weft_tests::eventually("not ready", Duration::from_secs(2), || async {
        (mesh.a.admin_get("/ready").await.0 == 503).then_some(())
    })
    .await;
    let during = curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
    assert_eq!(during.status, 200, "{}", during.text());
    // …and it finishes what it had, then stops taking connections and exits.
    let rsp = in_flight.await.unwrap();
    assert_eq!(rsp.status, 200, "{}", rsp.text());
    let status = mesh.a.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    assert!(tokio::net::TcpStream::connect(mesh.a.outbound)
        .await
        .is_err());
}

/// A proxy restarted right after its last requests still has them counted: once drained,
/// a proxy that is scraped waits for one more scrape before it exits, so the dashboard (and
/// `weft stat`) count every request it carried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_proxys_last_counts_are_collected_before_it_exits() {
    let mut mesh = Mesh::start().await;
    let (_dash, dashboard) =
        weft_tests::demo::start_dashboard(&["--proxy", &mesh.a.admin.to_string()]).await;
    weft_tests::eventually("the proxy scraped", Duration::from_secs(10), || async {
        let s = weft_tests::demo::api(dashboard, "/api/summary").await;
        (s["proxies_up"] == 1).then_some(())
    })
    .await;
    // Past the first scrape, which is the dashboard's baseline.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..60 {
        let rsp = curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
        assert_eq!(rsp.status, 200, "request {i}: {}", rsp.text());
    }
    mesh.a.sigterm();
    let status = mesh.a.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    let counted = weft_tests::eventually("the counts settled", Duration::from_secs(5), || async {
        let s = weft_tests::demo::api(dashboard, "/api/services?window=300").await;
        let world = s["services"]
            .as_array()?
            .iter()
            .find(|r| r["service"] == "world")?
            .clone();
        world["stats"]["requests"].as_f64()
    })
    .await;
    assert_eq!(counted, 60.0);
}

#[tokio::test]
async fn admin_shutdown_drains_and_exits_zero() {
    let mut mesh = Mesh::start().await;
    let req = http::Request::post("/shutdown")
        .header("host", "admin")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let rsp = weft_tests::client::send_h1(mesh.b.admin, req)
        .await
        .unwrap();
    assert_eq!(rsp.status, 202);
    let status = mesh.b.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn an_idle_proxy_does_not_keep_rereading_its_files() {
    // Reading a watched file raises inotify open/access events in its folder; a watcher
    // that reacted to them re-read both files every 50 ms forever, on the request thread.
    let dir = weft_tests::TempDir::new("idle-reads");
    let discovery = dir.path("discovery.toml");
    discovery::write(&discovery, &[]);
    let config = dir.path("weft.toml");
    std::fs::write(&config, "[resilience.retry]\nmax_retries = 1\n").unwrap();
    let config_flag = config.display().to_string();
    let proxy = WeftProxy::start_with("127.0.0.2", &discovery, &["--config", &config_flag]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = proxy.read_syscalls();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reads = proxy.read_syscalls() - before;
    println!("read syscalls in 3 s idle: {reads}");
    // The slow safety poll (every 2 s per file) is all that should remain.
    assert!(reads <= 24, "{reads} reads in 3 s of idling");
}
