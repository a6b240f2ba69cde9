//! An OTLP/gRPC trace collector for tests, built from the OpenTelemetry protos weft-api
//! compiles: it keeps every span it is sent, with the node of the proxy that sent it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use weft_api::otlp::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use weft_api::otlp::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use weft_api::otlp::common::v1::{any_value, KeyValue};
use weft_api::otlp::trace::v1::Span;

/// A span as the collector got it.
#[derive(Clone, Debug)]
pub struct Got {
    /// The `weft.node` of the proxy's resource.
    pub node: String,
    pub span: Span,
}

impl Got {
    pub fn trace_hex(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn id_hex(&self) -> String {
        hex(&self.span.span_id)
    }

    pub fn parent_hex(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// A string or integer attribute, as text.
    pub fn attr(&self, key: &str) -> Option<String> {
        value(&self.span.attributes, key)
    }

    pub fn kind(&self) -> i32 {
        self.span.kind
    }
}

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<Got>>>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let attrs = rs.resource.map(|r| r.attributes).unwrap_or_default();
            let node = value(&attrs, "weft.node").unwrap_or_default();
            for ss in rs.scope_spans {
                got.extend(ss.spans.into_iter().map(|span| Got {
                    node: node.clone(),
                    span,
                }));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

pub struct Collector {
    pub addr: SocketAddr,
    sink: Sink,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = Sink::default();
        let incoming = futures_util::stream::unfold(listener, |l| async move {
            let conn = l.accept().await.map(|(s, _)| s);
            Some((conn, l))
        });
        let service = TraceServiceServer::new(sink.clone());
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Self { addr, sink, task }
    }

    pub fn spans(&self) -> Vec<Got> {
        self.sink.0.lock().unwrap().clone()
    }

    /// The spans of trace `trace` (hex) once there are `n`, waiting up to `timeout`; what
    /// there is then, otherwise.
    pub async fn trace(&self, trace: &str, n: usize, timeout: Duration) -> Vec<Got> {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let got: Vec<Got> = self
                .spans()
                .into_iter()
                .filter(|g| g.trace_hex() == trace)
                .collect();
            if got.len() >= n || tokio::time::Instant::now() >= until {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn value(attrs: &[KeyValue], key: &str) -> Option<String> {
    let v = attrs.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match v.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
