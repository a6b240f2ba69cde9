//! KEDA's external scaler as KEDA calls it: a gRPC client generated from the same proto
//! against `weft dashboard --keda-listen`, while a steady load, every request of which the
//! test counts itself, crosses two real proxies to world.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::process::Command;
use tonic::transport::Channel;
use tonic::Code;
use weft_api::keda::external_scaler_client::ExternalScalerClient;
use weft_api::keda::{GetMetricsRequest, MetricSpec, ScaledObjectRef};
use weft_tests::backend::Backend;
use weft_tests::discovery::{self, Ep};
use weft_tests::load::{failures, Load};
use weft_tests::process::spawn_until;
use weft_tests::proxy::{weft_bin, WeftProxy};
use weft_tests::TempDir;

/// A block of loopback addresses no other test uses: the client's node and world's.
const NODE_A: &str = "127.0.27.2";
const NODE_B: &str = "127.0.27.3";
/// The load the client sends, per second.
const RPS: f64 = 40.0;
/// The window the scaler is asked over.
const WINDOW: Duration = Duration::from_secs(10);
/// How long one call may take before the test fails rather than hangs.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

type Scaler = ExternalScalerClient<Channel>;

/// A ScaledObject's trigger, in namespace `default` (given as empty, as the default).
fn trigger(metadata: &[(&str, &str)]) -> ScaledObjectRef {
    ScaledObjectRef {
        name: "world".into(),
        namespace: String::new(),
        scaler_metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    }
}

/// `GetMetrics` for the trigger's one metric: its value, or the status it was refused with.
async fn get_metrics(scaler: &mut Scaler, metadata: &[(&str, &str)]) -> Result<f64, tonic::Status> {
    let request = GetMetricsRequest {
        scaled_object_ref: Some(trigger(metadata)),
        metric_name: String::new(),
    };
    let rsp = tokio::time::timeout(CALL_TIMEOUT, scaler.get_metrics(request))
        .await
        .expect("GetMetrics answers in time")?
        .into_inner();
    assert_eq!(rsp.metric_values.len(), 1, "{rsp:?}");
    let v = &rsp.metric_values[0];
    assert_eq!(
        v.metric_value,
        v.metric_value_float.round() as i64,
        "{rsp:?}"
    );
    Ok(v.metric_value_float)
}

async fn is_active(scaler: &mut Scaler, metadata: &[(&str, &str)]) -> Result<bool, tonic::Status> {
    let rsp = tokio::time::timeout(CALL_TIMEOUT, scaler.is_active(trigger(metadata)))
        .await
        .expect("IsActive answers in time")?;
    Ok(rsp.into_inner().result)
}

fn assert_refused(result: Result<impl std::fmt::Debug, tonic::Status>, code: Code, says: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(says), "{says:?} in {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keda_scaler_reports_the_load_a_client_sent_and_refuses_what_it_cannot_answer() {
    let dir = TempDir::new("keda");
    let discovery_file = dir.path("discovery.toml");
    discovery::write_raw(&discovery_file, "");
    let world = Backend::start(NODE_B).await;
    let a = WeftProxy::start(NODE_A, &discovery_file).await;
    let b = WeftProxy::start(NODE_B, &discovery_file).await;
    let eps = vec![Ep::on(world.addr, b.inbound)];
    discovery::write(&discovery_file, &[("world", eps.clone())]);
    a.wait_for("world", &eps, true).await;
    b.wait_for("world", &eps, true).await;

    let mut cmd = Command::new(weft_bin());
    cmd.args(["dashboard", "--addr", "127.0.0.1:0", "--interval", "1s"])
        .args(["--keda-listen", "127.0.0.1:0"])
        .args([
            "--proxy",
            &a.admin.to_string(),
            "--proxy",
            &b.admin.to_string(),
        ]);
    let dashboard = spawn_until(cmd, "KEDA external scaler listening").await;
    let mut scaler = Scaler::connect(format!("http://{}", dashboard.addr("keda")))
        .await
        .expect("the scaler accepts a gRPC connection");

    let window = format!("{}s", WINDOW.as_secs());
    let rps: &[(&str, &str)] = &[("service", "world"), ("target", "2.5"), ("window", &window)];

    let load = Load::start(a.outbound, "world", "/echo", RPS);
    weft_tests::eventually("a first reading", Duration::from_secs(20), || {
        let mut scaler = scaler.clone();
        async move {
            get_metrics(&mut scaler, rps)
                .await
                .ok()
                .filter(|v| *v > 0.0)
        }
    })
    .await;
    // The whole window under steady load, and a collection round past it.
    tokio::time::sleep((WINDOW + Duration::from_secs(3)).saturating_sub(load.started.elapsed()))
        .await;

    let asked = Instant::now();
    let reported = get_metrics(&mut scaler, rps).await.expect("a reading");
    let per_instance = get_metrics(
        &mut scaler,
        &[
            ("service", "world"),
            ("metric", "requests-per-second-per-instance"),
            ("target", "10"),
            ("window", &window),
        ],
    )
    .await
    .expect("a reading per instance");
    // The client's own rate over the same window: the requests it sent in the window before
    // it asked (the dashboard's window ends at its last round, at most a second earlier;
    // under a steady load that shifts the count by far less than the margin).
    let since = asked.duration_since(load.started).saturating_sub(WINDOW);
    let sent = load.snapshot().iter().filter(|o| o.at >= since).count();
    let own = sent as f64 / WINDOW.as_secs_f64();
    println!("client {own} req/s; GetMetrics {reported} req/s, {per_instance} per instance");
    assert!(
        own >= RPS * 0.9,
        "the load ran: {own} req/s sent, {RPS} meant"
    );
    assert!(
        (reported - own).abs() <= own * 0.05,
        "GetMetrics says {reported} req/s, the client sent {own} req/s"
    );
    // world has one instance.
    assert!(
        (per_instance - own).abs() <= own * 0.05,
        "per instance {per_instance} req/s, the client sent {own} req/s to one instance"
    );

    let spec = tokio::time::timeout(CALL_TIMEOUT, scaler.get_metric_spec(trigger(rps)))
        .await
        .unwrap()
        .expect("GetMetricSpec")
        .into_inner();
    assert_eq!(
        spec.metric_specs,
        [MetricSpec {
            metric_name: "weft-requests-per-second-world".into(),
            target_size: 3,
            target_size_float: 2.5,
        }]
    );

    let below = [
        ("activationTarget", "1"),
        ("service", "world"),
        ("target", "2.5"),
    ];
    let above = [
        ("activationTarget", "1000"),
        ("service", "world"),
        ("target", "2.5"),
    ];
    assert!(
        is_active(&mut scaler, &below).await.unwrap(),
        "active at {reported} req/s over 1"
    );
    assert!(
        !is_active(&mut scaler, &above).await.unwrap(),
        "inactive at {reported} req/s under 1000"
    );

    // Bad triggers and figures there are none of.
    assert_refused(
        get_metrics(&mut scaler, &[("target", "10")]).await,
        Code::InvalidArgument,
        "service",
    );
    assert_refused(
        is_active(&mut scaler, &[("target", "10")]).await,
        Code::InvalidArgument,
        "service",
    );
    assert_refused(
        get_metrics(
            &mut scaler,
            &[("service", "world"), ("metric", "cpu"), ("target", "1")],
        )
        .await,
        Code::InvalidArgument,
        "requests-per-second-per-instance",
    );
    assert_refused(
        get_metrics(&mut scaler, &[("service", "world"), ("target", "0")]).await,
        Code::InvalidArgument,
        "target",
    );
    assert_refused(
        get_metrics(
            &mut scaler,
            &[("service", "world"), ("target", "1"), ("window", "1h")],
        )
        .await,
        Code::InvalidArgument,
        "window",
    );
    assert_refused(
        get_metrics(&mut scaler, &[("service", "nobody"), ("target", "1")]).await,
        Code::Unavailable,
        "nobody",
    );
    assert_refused(
        is_active(&mut scaler, &[("service", "nobody"), ("target", "1")]).await,
        Code::Unavailable,
        "nobody",
    );

    // The activity stream says "active" at once, and "inactive" once the load is gone.
    let short = [
        ("service", "world"),
        ("target", "2.5"),
        ("activationTarget", "1"),
        ("window", "2s"),
    ];
    let mut stream = tokio::time::timeout(CALL_TIMEOUT, scaler.stream_is_active(trigger(&short)))
        .await
        .unwrap()
        .expect("StreamIsActive")
        .into_inner();
    let first = tokio::time::timeout(CALL_TIMEOUT, stream.message())
        .await
        .expect("a first activity in time")
        .unwrap()
        .expect("an activity");
    assert!(first.result, "active under load");
    let outcomes = load.finish().await;
    assert!(failures(&outcomes).is_empty(), "{:?}", failures(&outcomes));
    let next = tokio::time::timeout(Duration::from_secs(15), stream.message())
        .await
        .expect("inactive within 15 s of the load stopping")
        .unwrap()
        .expect("an activity");
    assert!(!next.result, "inactive without load");
}
