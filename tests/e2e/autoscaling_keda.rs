//! KEDA's external scaler as KEDA calls it: a gRPC client generated from the same proto
//! against `weft dashboard --keda-listen`, while a steady load, every request of which the
//! test counts itself, crosses two real proxies to world; in plaintext, and over mutual
//! TLS as a ClusterTriggerAuthentication has KEDA dial it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
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
use weft_tests::site_cert::{self, SiteCert};
use weft_tests::TempDir;

/// A block of loopback addresses no other test uses: the client's node and world's.
const NODE_A: &str = "127.0.27.2";
const NODE_B: &str = "127.0.27.3";
/// The same for the test over mutual TLS.
const TLS_NODE_A: &str = "127.0.28.2";
const TLS_NODE_B: &str = "127.0.28.3";
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
    assert!(
        dashboard
            .log
            .lock()
            .unwrap()
            .contains("anyone on the network can read the figures"),
        "no warning that the scaler serves plaintext:\n{}",
        dashboard.log.lock().unwrap()
    );
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

/// A gRPC client's TLS as KEDA's is: the scaler's CA from `caCert`, the client certificate
/// from `tlsClientCert`/`tlsClientKey` when given, ALPN `h2`.
fn client_tls(ca: &Path, cert: Option<&SiteCert>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let mut config = match cert {
        Some(c) => {
            let chain = CertificateDer::pem_file_iter(&c.cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(&c.key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

fn tls_scaler(addr: &str, ca: &Path, cert: Option<&SiteCert>) -> Scaler {
    let tls = weft_api::channel::Tls {
        config: client_tls(ca, cert),
        gate: None,
    };
    Scaler::new(weft_api::channel::connect_lazy(addr, Some(tls)).unwrap())
}

/// `GetMetricSpec`, which the scaler answers from the trigger alone: anything that reaches
/// it is answered.
async fn metric_spec(scaler: &mut Scaler) -> Result<(), tonic::Status> {
    let trigger = trigger(&[("service", "world"), ("target", "10")]);
    tokio::time::timeout(CALL_TIMEOUT, scaler.get_metric_spec(trigger))
        .await
        .expect("GetMetricSpec answers or fails in time")
        .map(drop)
}

/// Over mutual TLS (`--keda-tls-cert`, `--keda-tls-key`, `--keda-client-ca`,
/// `--keda-allowed-names`), KEDA's operator, with a client certificate from the CA and the
/// name allowed, gets the figures; a client with no certificate, one from another CA, one
/// with another name, and a plaintext one get nothing: their handshake fails before any
/// call is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mutual_tls_only_kedas_certificate_gets_the_figures() {
    let dir = TempDir::new("keda-mtls");
    let server = site_cert::issue(&dir.0, "scaler", "localhost");
    let keda = site_cert::sign(&dir.0, "scaler", "keda", "keda-operator");
    let stranger = site_cert::sign(&dir.0, "scaler", "stranger", "someone-else");
    let forger = site_cert::issue(&dir.0, "forger", "keda-operator");

    let discovery_file = dir.path("discovery.toml");
    discovery::write_raw(&discovery_file, "");
    let world = Backend::start(TLS_NODE_B).await;
    let a = WeftProxy::start(TLS_NODE_A, &discovery_file).await;
    let b = WeftProxy::start(TLS_NODE_B, &discovery_file).await;
    let eps = vec![Ep::on(world.addr, b.inbound)];
    discovery::write(&discovery_file, &[("world", eps.clone())]);
    a.wait_for("world", &eps, true).await;

    let mut cmd = Command::new(weft_bin());
    cmd.args(["dashboard", "--addr", "127.0.0.1:0", "--interval", "1s"])
        .args(["--keda-listen", "127.0.0.1:0"])
        .arg("--keda-tls-cert")
        .arg(&server.cert)
        .arg("--keda-tls-key")
        .arg(&server.key)
        .arg("--keda-client-ca")
        .arg(&server.ca)
        .args(["--keda-allowed-names", "keda-operator"])
        .args(["--proxy", &a.admin.to_string()]);
    let dashboard = spawn_until(cmd, "KEDA external scaler listening").await;
    let port = dashboard.addr("keda").port();
    let url = format!("https://localhost:{port}");
    let log = dashboard.log.lock().unwrap().clone();
    assert!(!log.contains("anyone on the network"), "{log}");

    let load = Load::start(a.outbound, "world", "/echo", 20.0);
    let mut scaler = tls_scaler(&url, &server.ca, Some(&keda));
    let rps: &[(&str, &str)] = &[("service", "world"), ("target", "10"), ("window", "4s")];
    let reading =
        weft_tests::eventually("a reading over mutual TLS", Duration::from_secs(20), || {
            let mut scaler = scaler.clone();
            async move {
                get_metrics(&mut scaler, rps)
                    .await
                    .ok()
                    .filter(|v| *v > 0.0)
            }
        })
        .await;
    println!("GetMetrics over mutual TLS: {reading} req/s");
    assert!(is_active(&mut scaler, rps).await.unwrap());
    metric_spec(&mut scaler)
        .await
        .expect("KEDA's client is answered");

    // What a Go gRPC client insists on: the server picks h2 by ALPN.
    let connect = format!("localhost:{port}");
    let (cert, key) = (keda.cert.to_str().unwrap(), keda.key.to_str().unwrap());
    let shown = weft_tests::openssl::openssl(
        &[
            "s_client", "-connect", &connect, "-alpn", "h2", "-cert", cert, "-key", key,
        ],
        b"",
    )
    .await;
    assert!(shown.contains("ALPN protocol: h2"), "{shown}");

    for (who, mut client) in [
        ("no client certificate", tls_scaler(&url, &server.ca, None)),
        (
            "a certificate from another CA",
            tls_scaler(&url, &server.ca, Some(&forger)),
        ),
        (
            "a name not allowed",
            tls_scaler(&url, &server.ca, Some(&stranger)),
        ),
        (
            "plaintext",
            Scaler::new(
                weft_api::channel::connect_lazy(&format!("127.0.0.1:{port}"), None).unwrap(),
            ),
        ),
    ] {
        let refused = metric_spec(&mut client)
            .await
            .expect_err(&format!("{who} was answered"));
        // Not a status the scaler sent: the connection failed under the call (a plaintext
        // client reads the server's TLS alert as a broken HTTP/2 frame).
        let transport = std::error::Error::source(&refused)
            .is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some());
        assert!(transport, "{who}: {refused:?}");
        println!("{who}: {refused:?}");
    }
    let outcomes = load.finish().await;
    assert!(failures(&outcomes).is_empty(), "{:?}", failures(&outcomes));
}
