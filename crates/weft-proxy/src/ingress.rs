//! The ingress: requests from outside the cluster, routed by host and then by the same route
//! rules as the mesh's services (matches, weighted backends, per-rule timeout and retry) to
//! mesh services, and from there the outbound's way. Outside callers may set none of the
//! mesh's headers: every `weft-*` header they send is dropped, counted and logged, so no
//! deadline, override or hop count of theirs reaches the mesh.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::header::HeaderMap;
use http::{Method, Request, Response};
use weft_core::config::IngressConfig;
use weft_core::headers::{WEFT_CTX_HOPS, WEFT_ERROR, WEFT_REQUEST_ID};
use weft_core::route::Routes;
use weft_core::trace::TraceId;
use weft_http::ClientBody;
use weft_metrics::RouteFamilies;

use crate::body::ProxyBody;
use crate::carried;
use crate::error::ProxyError;
use crate::identify;
use crate::lifecycle;
use crate::mesh::{self, Seen};
use crate::respond;
use crate::routing::{self, RouteTable, Routed};
use crate::shared::Shared;
use crate::trace::{self, RequestTrace};

/// The ingress's hosts and their routes, built once from config.
pub(crate) struct Ingress {
    hosts: HashMap<String, Arc<RouteTable>>,
    /// The routes of `*`: any host not listed.
    any: Option<Arc<RouteTable>>,
    access_log: Option<AccessLog>,
}

impl Ingress {
    pub(crate) fn new(config: &IngressConfig, families: &RouteFamilies) -> Result<Self, String> {
        let mut hosts = HashMap::new();
        let mut any = None;
        for host in &config.hosts {
            let routes = Arc::new(Routes::new(host.routes.clone())?);
            // Route series are labelled with the host's first name, from config.
            let table = Arc::new(RouteTable::new(&host.names[0], routes, families));
            for name in &host.names {
                match name.as_str() {
                    "*" => any = Some(Arc::clone(&table)),
                    n => {
                        hosts.insert(n.to_ascii_lowercase(), Arc::clone(&table));
                    }
                }
            }
        }
        let access_log = config
            .access_log
            .as_deref()
            .map(AccessLog::open)
            .transpose()?;
        Ok(Self {
            hosts,
            any,
            access_log,
        })
    }

    /// The routes of the host `authority` names (its port and a trailing dot aside).
    fn table(&self, authority: &str) -> Option<&Arc<RouteTable>> {
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        let host = host.trim_end_matches('.');
        let found = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.hosts.get(&host.to_ascii_lowercase())
        } else {
            self.hosts.get(host)
        };
        found.or(self.any.as_ref())
    }
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    ingress: Arc<Ingress>,
    client: SocketAddr,
    mut req: Request<ClientBody>,
) -> Response<ProxyBody> {
    let start = Instant::now();
    // The caller's hop count is kept: an app calling its own public address (or an egress
    // host leading back here) loops through the ingress, and a forged count can only stop
    // the forger's own request sooner. Nothing else in the mesh's headers is believed.
    let seen = mesh::scan(req.headers());
    let hops = carried::hops(req.headers(), seen, shared.config.context.max_hops);
    drop_mesh_headers(&shared, req.headers_mut());
    // The mesh's first hop: the request gets its id, and joins the caller's trace or
    // starts one; both go in the access log.
    carried::make_request_id(req.headers_mut());
    let request_id = req.headers().get(WEFT_REQUEST_ID).cloned();
    let mut trace = shared.tracer.as_ref().map(|t| {
        let mut trace = t.join(req.headers(), trace::Kind::Ingress, start);
        trace.describe(&req, None);
        trace
    });
    let trace_id = trace.as_ref().map(|t| t.trace_id());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (rsp, routed) = match hops {
        Ok(hops) => route(&shared, &ingress, start, (client, hops, &mut trace), req).await,
        Err(e) => (
            respond::failed(shared.outbound.unknown_metrics(), start, &e),
            Err(e.kind()),
        ),
    };
    // Refused before it was forwarded: the ingress's span is the whole trace here.
    if let (Some(t), Err(kind)) = (trace, &routed) {
        let status = rsp.status();
        t.finish(
            Instant::now(),
            Some(status.as_u16()),
            status.is_server_error(),
            kind,
        );
    }
    let service = routed.ok();
    let rsp = plain_errors(rsp);
    if let Some(log) = &ingress.access_log {
        log.write(&Entry {
            client,
            method: &method,
            path: &path,
            service: service.as_deref(),
            status: rsp.status().as_u16(),
            start,
            request_id: request_id.as_ref().and_then(|v| v.to_str().ok()),
            trace_id,
        });
    }
    rsp
}

/// An answer the mesh made (its own, or a peer proxy's) says only its cause to an outside
/// caller: the one-line body names endpoints, addresses and timeouts inside the cluster.
fn plain_errors(rsp: Response<ProxyBody>) -> Response<ProxyBody> {
    let Some(kind) = rsp.headers().get(WEFT_ERROR).and_then(|v| v.to_str().ok()) else {
        return rsp;
    };
    let line = format!("weft: {kind}\n");
    let (mut parts, _) = rsp.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, ProxyBody::full(line))
}

/// The request routed and forwarded, and the service it went to; or refused, and why.
async fn route(
    shared: &Arc<Shared>,
    ingress: &Ingress,
    start: Instant,
    (client, hops, trace): (SocketAddr, u32, &mut Option<Box<RequestTrace>>),
    mut req: Request<ClientBody>,
) -> (Response<ProxyBody>, Result<String, &'static str>) {
    let refused = |e: ProxyError| {
        let rsp = respond::failed(shared.outbound.unknown_metrics(), start, &e);
        (rsp, Err(e.kind()))
    };
    if req.method() == Method::CONNECT {
        return refused(ProxyError::BadRequest(
            "CONNECT is not taken at the ingress",
        ));
    }
    let _admitted = match shared.ingress_in_flight.admit() {
        Ok(a) => a,
        Err(e) => return refused(e),
    };
    let authority = match identify::screen(&req) {
        Ok(a) => a,
        Err(e) => return refused(e),
    };
    let rule = ingress
        .table(&authority)
        .and_then(|table| Some((table, table.find(&req)?)));
    let Some((table, rule)) = rule else {
        let host = authority.chars().take(100).collect();
        return refused(ProxyError::NoIngressRoute { host });
    };
    let routed = Routed {
        table: Arc::clone(table),
        rule,
    };
    // The policy and the client's view go to the service of the backend drawn first; each
    // attempt then draws its own, as in the mesh.
    let service = match routing::backend(&shared.outbound, &routed, 0).await {
        Ok((_, service)) => service,
        Err((_, e)) => return refused(e),
    };
    // The count goes on to the next hop as a mesh app's would; no other mesh header is left.
    if hops > 0 {
        carried::set_hops(req.headers_mut(), hops);
    }
    let name = service.name.to_string();
    let fresh = lifecycle::Arrived {
        source: client,
        seen: Seen::default(),
        hops,
        trace: trace.take(),
    };
    let rsp = lifecycle::forward(shared, start, service, authority, Some(routed), fresh, req).await;
    (rsp, Ok(name))
}

/// Removes every `weft-*` header an outside caller sent, counting each but the hop count by
/// name (the names weft knows; any other as `weft-*`) and logging one line per request that
/// had any.
fn drop_mesh_headers(shared: &Shared, headers: &mut HeaderMap) {
    // The hop count was read, and the ingress says it again itself.
    headers.remove(WEFT_CTX_HOPS);
    let forged: Vec<_> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("weft-"))
        .cloned()
        .collect();
    if forged.is_empty() {
        return;
    }
    for name in &forged {
        headers.remove(name);
        let label = KNOWN
            .iter()
            .find(|k| **k == name.as_str())
            .copied()
            .unwrap_or("weft-*");
        shared.context.dropped("ingress", label, "outside caller");
    }
    let names: Vec<&str> = forged.iter().map(|n| n.as_str()).take(8).collect();
    tracing::info!(headers = ?names, "dropped weft-* headers from an outside caller");
}

/// The `weft-*` names counted by name; bounded, so a caller cannot grow the series.
const KNOWN: &[&str] = &[
    "weft-request-id",
    "weft-ctx-override",
    "weft-ctx-deadline",
    "weft-ctx-timeout",
    "weft-dst-service",
    "weft-orig-proto",
];

/// Where the access log goes: a file, appended, or standard output, written by a thread of
/// its own, so a slow reader of stdout never stalls a request; past `LOG_QUEUE` lines
/// waiting, lines are dropped, and the proxy's log says how many.
struct AccessLog {
    lines: std::sync::mpsc::SyncSender<String>,
    dropped: std::sync::atomic::AtomicU64,
}

/// Lines waiting for the writer at most.
const LOG_QUEUE: usize = 4096;

struct Entry<'a> {
    client: SocketAddr,
    method: &'a Method,
    path: &'a str,
    service: Option<&'a str>,
    status: u16,
    start: Instant,
    request_id: Option<&'a str>,
    trace_id: Option<TraceId>,
}

impl AccessLog {
    fn open(path: &Path) -> Result<Self, String> {
        let mut out: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("ingress.access_log {}: {e}", path.display()))?;
            Box::new(file)
        };
        let (lines, queue) = std::sync::mpsc::sync_channel::<String>(LOG_QUEUE);
        std::thread::Builder::new()
            .name("weft-access-log".into())
            .spawn(move || {
                while let Ok(line) = queue.recv() {
                    let _ = out.write_all(line.as_bytes());
                    let _ = out.flush();
                }
            })
            .map_err(|e| format!("ingress.access_log: {e}"))?;
        Ok(Self {
            lines,
            dropped: Default::default(),
        })
    }

    /// One JSON line, written whole: lines from concurrent requests never interleave.
    fn write(&self, e: &Entry<'_>) {
        use std::sync::atomic::Ordering::Relaxed;
        let time = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut line = serde_json::json!({
            "time": time,
            "client": e.client.to_string(),
            "method": e.method.as_str(),
            // Bounded: a log line stays a line whatever the caller sent.
            "path": e.path.chars().take(512).collect::<String>(),
            "service": e.service,
            "status": e.status,
            "duration_ms": e.start.elapsed().as_secs_f64() * 1000.0,
            "request_id": e.request_id,
            "trace_id": e.trace_id.map(|t| t.hex()),
        })
        .to_string();
        line.push('\n');
        if self.lines.try_send(line).is_err() {
            let dropped = self.dropped.fetch_add(1, Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    "access log lines dropped: its output is not keeping up"
                );
            }
        }
    }
}
