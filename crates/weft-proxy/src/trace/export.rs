//! Kept spans on their way to the collector: a bounded queue the request's way only ever
//! tries to fill, drained by one task that batches (by count or time) and exports over
//! OTLP/gRPC. A slow or absent collector costs dropped spans, counted, never a request's
//! time; the channel reconnects by itself.

use std::time::{Duration, Instant, UNIX_EPOCH};

use http::Version;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use weft_api::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use weft_api::otlp::collector::trace::v1::ExportTraceServiceRequest;
use weft_api::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use weft_api::otlp::resource::v1::Resource;
use weft_api::otlp::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};
use weft_core::config::TracingConfig;
use weft_metrics::TraceMetrics;

use super::span::{Finished, Kind};

pub(super) fn spawn(
    otlp: &str,
    node: &str,
    config: &TracingConfig,
    (mut queue, mut flush): (mpsc::Receiver<Finished>, watch::Receiver<bool>),
    metrics: TraceMetrics,
) -> JoinHandle<()> {
    let resource = resource(node);
    let (size, interval) = (config.batch, config.batch_interval);
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{otlp}")).map(|e| {
        e.connect_timeout(Duration::from_secs(2))
            .timeout(config.export_timeout)
    });
    tokio::spawn(async move {
        let mut client = match endpoint {
            Ok(e) => TraceServiceClient::new(e.connect_lazy()),
            Err(e) => {
                // The config check took it as HOST:PORT; a URI that still will not parse
                // drops every span, counted.
                let why = "tracing.otlp is not a usable address; spans are dropped";
                tracing::warn!(error = %e, "{why}");
                loop {
                    tokio::select! {
                        got = queue.recv() => match got {
                            Some(f) => metrics.export_failed(f.len() as u64),
                            None => return,
                        },
                        _ = flush.wait_for(|f| *f) => return,
                    }
                }
            }
        };
        // Room for a usual batch; a large `batch` grows to its size only if spans come.
        let room = size.min(1024);
        let mut batch: Vec<Span> = Vec::with_capacity(room);
        let mut failing = false;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let full = tokio::select! {
                got = queue.recv() => match got {
                    Some(f) => {
                        spans(&f, &mut batch);
                        batch.len() >= size
                    }
                    None => break,
                },
                _ = tick.tick() => !batch.is_empty(),
                // The proxy has drained: what is queued is all there will be.
                _ = flush.wait_for(|f| *f) => {
                    while let Ok(f) = queue.try_recv() {
                        spans(&f, &mut batch);
                    }
                    break;
                }
            };
            if full {
                let spans = std::mem::replace(&mut batch, Vec::with_capacity(room));
                failing = send(&mut client, &resource, spans, &metrics, failing).await;
            }
        }
        while !batch.is_empty() {
            let rest = batch.split_off(size.min(batch.len()));
            let spans = std::mem::replace(&mut batch, rest);
            failing = send(&mut client, &resource, spans, &metrics, failing).await;
        }
    })
}

/// Exports one batch; whether it failed. The first failure after a success is logged, and
/// the first success after failures: a collector that stays down is one line, not one per
/// batch.
async fn send(
    client: &mut TraceServiceClient<tonic::transport::Channel>,
    resource: &Resource,
    spans: Vec<Span>,
    metrics: &TraceMetrics,
    failing: bool,
) -> bool {
    let n = spans.len() as u64;
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "weft".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    match client.export(request).await {
        Ok(_) => {
            if failing {
                tracing::info!("span export resumed");
            }
            metrics.exported(n);
            false
        }
        Err(e) => {
            if failing {
                tracing::debug!(error = %e, spans = n, "span export failed");
            } else {
                let why = "span export failed; spans are dropped until the collector takes them";
                tracing::warn!(error = %e, spans = n, "{why}");
            }
            metrics.export_failed(n);
            true
        }
    }
}

fn resource(node: &str) -> Resource {
    // Unique per process: an ingress replica may share its node with the node's proxy.
    let instance = format!("{node}/{}", std::process::id());
    Resource {
        attributes: vec![
            kv("service.name", "weft-proxy"),
            kv("service.namespace", "weft"),
            kv("service.instance.id", &instance),
            kv("weft.node", node),
        ],
        ..Default::default()
    }
}

/// The request's spans in OTLP's form: this proxy's, and one per attempt.
fn spans(f: &Finished, out: &mut Vec<Span>) {
    let t = &*f.trace;
    let at = |i: Instant| -> u64 {
        let wall = t.wall + i.saturating_duration_since(t.started);
        wall.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    };
    let service = t.service.as_ref().map_or("", |s| s.as_str());
    let name = match service {
        "" => t.method.to_string(),
        s => format!("{} {s}", t.method),
    };
    let path = bounded(t.uri.path());
    let mut attrs = vec![
        method(&t.method),
        kv("url.path", path),
        kv("url.scheme", t.uri.scheme_str().unwrap_or("http")),
        kv("server.address", t.uri.host().unwrap_or(service)),
        kv("network.protocol.name", "http"),
        kv("network.protocol.version", protocol(t.version)),
        kv("weft.service", service),
        kv(
            "weft.direction",
            match t.kind {
                Kind::Outbound => "outbound",
                Kind::Ingress => "ingress",
                Kind::Inbound => "inbound",
            },
        ),
        kv("weft.trace.kept", f.kept),
    ];
    if let Some(s) = f.status {
        attrs.push(int("http.response.status_code", s.into()));
    }
    if f.failed {
        // The conventions' error type: the proxy's cause, else a 5xx status; a failure the
        // status does not show (a gRPC status, a broken body) is `_OTHER`.
        let kind = match (f.error, f.status) {
            ("", Some(s)) if s >= 500 => s.to_string(),
            ("", _) => "_OTHER".to_string(),
            (e, _) => e.to_string(),
        };
        attrs.push(kv("error.type", &kind));
    }
    if !f.error.is_empty() {
        attrs.push(kv("weft.error", f.error));
    }
    if let Some(id) = t.request_id.as_ref().and_then(|v| v.to_str().ok()) {
        attrs.push(kv("weft.request_id", id));
    }
    if let Some(peer) = &t.peer {
        attrs.push(kv("weft.peer.identity", peer));
    }
    if f.partial {
        attrs.push(boolean("weft.trace.partial", true));
    }
    if t.attempts.len() > 1 {
        attrs.push(int("weft.retries", t.attempts.len() as i64 - 1));
    }
    let flags = u32::from(t.sampled);
    let tracestate = t
        .tracestate
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    out.push(Span {
        trace_id: t.trace.0.to_vec(),
        span_id: t.span.0.to_vec(),
        trace_state: tracestate.clone(),
        parent_span_id: t.parent.map(|p| p.0.to_vec()).unwrap_or_default(),
        flags,
        name: name.clone(),
        kind: match t.kind {
            Kind::Outbound => span::SpanKind::Internal,
            Kind::Ingress | Kind::Inbound => span::SpanKind::Server,
        } as i32,
        start_time_unix_nano: at(t.started),
        end_time_unix_nano: at(f.end),
        attributes: attrs,
        status: Some(outcome(f.failed, f.error)),
        ..Default::default()
    });
    let last = t.attempts.len().saturating_sub(1);
    for (i, a) in t.attempts.iter().enumerate() {
        // The answer's attempt lasts as the response does; the others, to their answer.
        let end = if i == last {
            f.end
        } else {
            a.end.unwrap_or(f.end)
        };
        let failed = a.failed;
        let addr = a.endpoint.endpoint.addr;
        let mut attrs = vec![
            method(&t.method),
            kv("url.path", path),
            kv("server.address", service),
            kv("network.peer.address", &addr.ip().to_string()),
            int("network.peer.port", addr.port().into()),
            kv("weft.service", service),
            kv("weft.endpoint", &a.endpoint.label),
            int("weft.retry.attempt", i as i64),
        ];
        if i > 0 {
            attrs.push(int("http.request.resend_count", i as i64));
        }
        if let Some(node) = &a.endpoint.node {
            attrs.push(kv("weft.endpoint.node", node));
        }
        if let Some(s) = a.status {
            attrs.push(int("http.response.status_code", s.into()));
        }
        if let Some(g) = a.grpc_status {
            attrs.push(int("rpc.grpc.status_code", g.into()));
        }
        if let Some(e) = a.error {
            attrs.push(kv("error.type", e));
            attrs.push(kv("weft.error", e));
        } else if failed {
            let kind = match (a.status, a.grpc_status) {
                (Some(s), _) if s >= 500 => s.to_string(),
                (_, Some(g)) => g.to_string(),
                _ => "_OTHER".to_string(),
            };
            attrs.push(kv("error.type", &kind));
        }
        out.push(Span {
            trace_id: t.trace.0.to_vec(),
            span_id: a.span.0.to_vec(),
            trace_state: tracestate.clone(),
            parent_span_id: t.span.0.to_vec(),
            flags,
            name: name.clone(),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: at(a.start),
            end_time_unix_nano: at(end),
            attributes: attrs,
            status: Some(outcome(failed, a.error.unwrap_or(""))),
            ..Default::default()
        });
    }
}

/// A path as spans carry it: its first 512 bytes (at a character's edge), as the access
/// log does, so a client's long URL cannot swell every span and batch.
fn bounded(path: &str) -> &str {
    let mut end = path.len().min(512);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

fn outcome(failed: bool, message: &str) -> Status {
    Status {
        code: if failed {
            status::StatusCode::Error
        } else {
            status::StatusCode::Unset
        } as i32,
        message: message.to_string(),
    }
}

/// `http.request.method` as the conventions want it: a known method, or `_OTHER` with the
/// original beside it (here, in the name only).
fn method(m: &http::Method) -> KeyValue {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    let m = m.as_str();
    kv(
        "http.request.method",
        if KNOWN.contains(&m) { m } else { "_OTHER" },
    )
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    attr(key, any_value::Value::StringValue(value.to_string()))
}

fn int(key: &str, value: i64) -> KeyValue {
    attr(key, any_value::Value::IntValue(value))
}

fn boolean(key: &str, value: bool) -> KeyValue {
    attr(key, any_value::Value::BoolValue(value))
}

fn attr(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}
