//! KEDA's external scaler (proto/keda), served by `weft dashboard --keda-listen`: the
//! figures of [`crate::autoscale`] for clusters where another external metrics server holds
//! the APIService, so KEDA asks weft instead of the API server asking it.
//!
//! A ScaledObject's `external` trigger names what to scale on in its metadata:
//! `service` (required), `metric` (default `requests-per-second`), `target` (required, per
//! instance as the HPA divides), `activationTarget` (default 0) and `window` (default
//! [`autoscale::DEFAULT_WINDOW`]); the namespace is the ScaledObject's.
//!
//! A figure the history cannot back is `UNAVAILABLE`, never a zero. KEDA passes an error from
//! `GetMetrics` on to the HPA, which then cannot compute a replica count and keeps the
//! current one (its `ScalingActive` condition turns false, `FailedGetExternalMetric`), and
//! an error from `IsActive` with no `fallback` in the ScaledObject is a `TriggerError` that
//! scales nothing, not even to zero; with a `fallback`, KEDA holds `fallback.replicas` after
//! `failureThreshold` errors in a row (keda.sh/docs, ScaledObject spec, "fallback").
//!
//! The figures travel over mutual TLS ([`KedaTls`]): the dashboard's certificate, and only
//! clients with a certificate from `--keda-client-ca` (KEDA's operator, given `caCert`,
//! `tlsClientCert` and `tlsClientKey` by a ClusterTriggerAuthentication).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};
use weft_api::keda::external_scaler_server::{ExternalScaler, ExternalScalerServer};
use weft_api::keda::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};
use weft_api::tls_incoming;
use weft_identity::callers::{common_name, Callers};
use weft_identity::edge::EdgeCert;

use crate::autoscale::{self, Metric};
use crate::Shared;

/// The metadata key naming the figure.
pub const METRIC_KEY: &str = "metric";
/// The metadata key of the target value per instance.
pub const TARGET_KEY: &str = "target";
/// The metadata key of the value above which the workload is active (scaled from zero).
pub const ACTIVATION_KEY: &str = "activationTarget";
/// The figure when the metadata names none.
pub const DEFAULT_METRIC: Metric = Metric::RequestsPerSecond;

/// The scaler: every call reads the dashboard's history, as the JSON API does.
pub struct Scaler {
    shared: Arc<Shared>,
    /// The dashboard's stop signal: `StreamIsActive` streams end with it, or the server's
    /// graceful shutdown would wait for them forever.
    stop: watch::Receiver<bool>,
}

/// What a trigger's metadata asks for, checked.
#[derive(Debug, PartialEq)]
struct Query {
    namespace: String,
    service: String,
    metric: Metric,
    target: f64,
    activation: f64,
    window: Duration,
}

/// The metadata as given, before the window is checked against the history kept.
#[derive(Debug, PartialEq)]
struct Asked<'a> {
    service: String,
    metric: Metric,
    target: f64,
    activation: f64,
    window: Option<&'a str>,
}

impl Scaler {
    pub fn new(shared: Arc<Shared>, stop: watch::Receiver<bool>) -> Self {
        Self { shared, stop }
    }
}

/// The figure `query` asks for, now; no reading is `UNAVAILABLE` with its reason.
fn read(shared: &Shared, query: &Query) -> Result<f64, Status> {
    let history = shared.history.read().unwrap_or_else(|e| e.into_inner());
    autoscale::read(
        &history,
        &query.namespace,
        &query.service,
        query.metric,
        query.window,
    )
    .map(|r| r.value)
    .map_err(|e| Status::unavailable(e.to_string()))
}

impl Query {
    fn parse(shared: &Shared, object: &ScaledObjectRef) -> Result<Self, Status> {
        let asked = Asked::parse(&object.scaler_metadata)?;
        let window = autoscale::window(shared, asked.window).map_err(|e| {
            Status::invalid_argument(format!("metadata {}: {e}", autoscale::WINDOW_LABEL))
        })?;
        let namespace = match object.namespace.as_str() {
            "" => "default".to_string(),
            ns => ns.to_string(),
        };
        Ok(Self {
            namespace,
            service: asked.service,
            metric: asked.metric,
            target: asked.target,
            activation: asked.activation,
            window,
        })
    }

    /// The metric's name for the HPA KEDA makes: stable for a trigger, so `GetMetrics` is
    /// asked for what `GetMetricSpec` named.
    fn metric_name(&self) -> String {
        format!("weft-{}-{}", self.metric.name(), self.service)
    }
}

impl<'a> Asked<'a> {
    fn parse(metadata: &'a HashMap<String, String>) -> Result<Self, Status> {
        let service = metadata
            .get(autoscale::SERVICE_LABEL)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "metadata {} is required: the service to scale on, as callers name it",
                    autoscale::SERVICE_LABEL
                ))
            })?
            .to_ascii_lowercase();
        let metric = match metadata.get(METRIC_KEY) {
            None => DEFAULT_METRIC,
            Some(name) => Metric::from_name(name.trim()).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "metadata {METRIC_KEY}: {name:?} is not a figure weft serves; it serves {}",
                    Metric::names()
                ))
            })?,
        };
        let number = |key: &str| -> Result<Option<f64>, Status> {
            let Some(v) = metadata.get(key) else {
                return Ok(None);
            };
            match v.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(Some(n)),
                _ => Err(Status::invalid_argument(format!(
                    "metadata {key}: {v:?} is not a number"
                ))),
            }
        };
        let target = number(TARGET_KEY)?.ok_or_else(|| {
            Status::invalid_argument(format!(
                "metadata {TARGET_KEY} is required: the value per instance to scale to"
            ))
        })?;
        if target <= 0.0 {
            return Err(Status::invalid_argument(format!(
                "metadata {TARGET_KEY}: {target} is not positive"
            )));
        }
        let activation = number(ACTIVATION_KEY)?.unwrap_or(0.0);
        if activation < 0.0 {
            return Err(Status::invalid_argument(format!(
                "metadata {ACTIVATION_KEY}: {activation} is negative"
            )));
        }
        Ok(Self {
            service,
            metric,
            target,
            activation,
            window: metadata.get(autoscale::WINDOW_LABEL).map(String::as_str),
        })
    }
}

#[tonic::async_trait]
impl ExternalScaler for Scaler {
    type StreamIsActiveStream = ReceiverStream<Result<IsActiveResponse, Status>>;
    type StreamMetricSpecStream = ReceiverStream<Result<GetMetricSpecResponse, Status>>;

    async fn is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        let query = Query::parse(&self.shared, request.get_ref())?;
        let value = read(&self.shared, &query)?;
        Ok(Response::new(IsActiveResponse {
            result: value > query.activation,
        }))
    }

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let query = Query::parse(&self.shared, request.get_ref())?;
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(follow_activity(
            Arc::clone(&self.shared),
            query,
            tx,
            self.stop.clone(),
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        let query = Query::parse(&self.shared, request.get_ref())?;
        Ok(Response::new(GetMetricSpecResponse {
            metric_specs: vec![MetricSpec {
                metric_name: query.metric_name(),
                // The integer field is deprecated but still read by older KEDAs: rounded
                // up, so a fractional target never becomes zero.
                target_size: query.target.ceil() as i64,
                target_size_float: query.target,
            }],
        }))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let request = request.into_inner();
        let object = request
            .scaled_object_ref
            .ok_or_else(|| Status::invalid_argument("scaledObjectRef is required"))?;
        let query = Query::parse(&self.shared, &object)?;
        let value = read(&self.shared, &query)?;
        // The metadata decides the figure; the name asked for is only echoed, so a
        // ScaledObject edited between calls is answered for what it says now.
        let metric_name = match request.metric_name {
            name if name.is_empty() => query.metric_name(),
            name => name,
        };
        Ok(Response::new(GetMetricsResponse {
            metric_values: vec![MetricValue {
                metric_name,
                metric_value: value.round() as i64,
                metric_value_float: value,
            }],
        }))
    }

    /// Targets come from the ScaledObject and never change here, so there is nothing to
    /// push: KEDA takes `UNIMPLEMENTED` as "poll `GetMetricSpec`", as the proto says.
    async fn stream_metric_spec(
        &self,
        _request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamMetricSpecStream>, Status> {
        Err(Status::unimplemented(
            "targets come from the ScaledObject's metadata: use GetMetricSpec",
        ))
    }
}

/// Sends whether the workload is active each time that changes, checking every collection
/// round, until the client goes or the dashboard stops. While there is no reading nothing
/// is sent, so KEDA keeps what it had.
async fn follow_activity(
    shared: Arc<Shared>,
    query: Query,
    tx: mpsc::Sender<Result<IsActiveResponse, Status>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(shared.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tx.closed() => return,
            _ = stop.wait_for(|s| *s) => return,
        }
        let active = match read(&shared, &query) {
            Ok(value) => value > query.activation,
            Err(e) => {
                tracing::debug!(service = %query.service, error = %e.message(), "KEDA activity stream: no reading");
                continue;
            }
        };
        if sent == Some(active) {
            continue;
        }
        if tx
            .send(Ok(IsActiveResponse { result: active }))
            .await
            .is_err()
        {
            return;
        }
        sent = Some(active);
    }
}

/// How the scaler is reached: TLS with the dashboard's certificate and, with a client CA,
/// only by KEDA's operator; or plaintext h2c, which anyone on the network can read.
#[derive(Clone, Debug)]
pub struct KedaTls {
    pub cert: Arc<EdgeCert>,
    /// Only clients with a certificate from this CA; `None` takes any client.
    pub clients: Option<ClientCa>,
}

/// The CA a client's certificate must come from (and the names it may carry), as a file
/// read again with the certificate, so a rotated CA (cert-manager's) is followed.
#[derive(Clone, Debug)]
pub struct ClientCa {
    pub path: PathBuf,
    pub names: Vec<String>,
    pub callers: Arc<Callers>,
}

impl ClientCa {
    /// Reads the CA in `path`; only clients named one of `names` (any, when empty).
    pub fn load(path: &Path, names: Vec<String>) -> Result<Self, String> {
        let callers = Callers::new(&read_ca(path)?, names.clone())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            names,
            callers,
        })
    }
}

impl KedaTls {
    /// The TLS the scaler's listener serves: ALPN `h2`, a client certificate required when
    /// there is a client CA.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        let callers = self.clients.as_ref().map(|c| Arc::clone(&c.callers));
        self.cert.grpc_server_config(callers)
    }

    /// Reads the certificate and the client CA again; what does not load keeps the last.
    pub fn reload(&self) -> Result<(), String> {
        let cert = self.cert.reload();
        let clients = match &self.clients {
            Some(ca) => read_ca(&ca.path).and_then(|pem| {
                ca.callers
                    .update(&pem, ca.names.clone())
                    .map_err(|e| format!("{}: {e}", ca.path.display()))
            }),
            None => Ok(()),
        };
        cert.and(clients)
    }
}

fn read_ca(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Serves the scaler on `listener` until `stop` turns true: gRPC over TLS under `tls` (KEDA
/// dials TLS when its trigger authentication gives `caCert`), or over plaintext HTTP/2
/// without it.
pub async fn serve_keda(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let scaler = ExternalScalerServer::new(Scaler::new(shared, stop.clone()));
    let mut stop = stop;
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let router = tonic::transport::Server::builder()
        // Finds a KEDA operator that vanished without closing its activity streams.
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
        .add_service(scaler);
    let served = match tls {
        Some(config) => {
            // The client's name, for the debug line each accepted connection logs.
            let incoming = tls_incoming::incoming(listener, config, |session| {
                session
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(common_name)
            });
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
                .await
        }
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "the KEDA external scaler stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn refused(pairs: &[(&str, &str)]) -> Status {
        Asked::parse(&metadata(pairs)).expect_err("refused")
    }

    #[test]
    fn metadata_defaults_to_requests_per_second_and_no_activation() {
        let m = metadata(&[("service", "World"), ("target", "2.5")]);
        assert_eq!(
            Asked::parse(&m).unwrap(),
            Asked {
                service: "world".into(),
                metric: Metric::RequestsPerSecond,
                target: 2.5,
                activation: 0.0,
                window: None,
            }
        );
        let m = metadata(&[
            ("service", "world"),
            ("metric", "p99-latency-seconds"),
            ("target", "0.2"),
            ("activationTarget", "0.05"),
            ("window", "1m"),
        ]);
        let asked = Asked::parse(&m).unwrap();
        assert_eq!(asked.metric, Metric::P99LatencySeconds);
        assert_eq!(asked.activation, 0.05);
        assert_eq!(asked.window, Some("1m"));
    }

    #[test]
    fn bad_metadata_is_an_invalid_argument_naming_the_key() {
        for (pairs, key) in [
            (&[("target", "10")][..], "service"),
            (&[("service", " "), ("target", "10")][..], "service"),
            (&[("service", "world")][..], "target"),
            (&[("service", "world"), ("target", "0")][..], "target"),
            (&[("service", "world"), ("target", "ten")][..], "target"),
            (&[("service", "world"), ("target", "NaN")][..], "target"),
            (
                &[
                    ("service", "world"),
                    ("target", "1"),
                    ("activationTarget", "-1"),
                ][..],
                "activationTarget",
            ),
        ] {
            let status = refused(pairs);
            assert_eq!(status.code(), Code::InvalidArgument, "{pairs:?}");
            assert!(status.message().contains(key), "{pairs:?}: {status:?}");
        }
    }

    #[test]
    fn an_unknown_metric_is_refused_with_the_names_there_are() {
        let status = refused(&[("service", "world"), ("target", "1"), ("metric", "cpu")]);
        assert_eq!(status.code(), Code::InvalidArgument);
        for m in Metric::ALL {
            assert!(status.message().contains(m.name()), "{status:?}");
        }
    }

    #[test]
    fn the_metric_name_is_stable_per_trigger() {
        let query = Query {
            namespace: "prod".into(),
            service: "world".into(),
            metric: Metric::RequestsPerSecondPerInstance,
            target: 10.0,
            activation: 0.0,
            window: autoscale::DEFAULT_WINDOW,
        };
        assert_eq!(
            query.metric_name(),
            "weft-requests-per-second-per-instance-world"
        );
    }
}
