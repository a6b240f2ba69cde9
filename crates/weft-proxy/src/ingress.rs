//! The ingress: requests from outside the cluster, routed by host and then by the same route
//! rules as the mesh's services (matches, weighted backends, per-rule timeout and retry) to
//! mesh services, and from there the outbound's way. Outside callers may set none of the
//! mesh's headers: every `weft-*` header they send is dropped, counted and logged, so no
//! deadline, override or hop count of theirs reaches the mesh.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use http::header::HeaderMap;
use http::{Method, Request, Response};
use weft_core::config::IngressConfig;
use weft_core::route::Routes;
use weft_http::ClientBody;
use weft_metrics::RouteFamilies;

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::identify;
use crate::lifecycle;
use crate::mesh::Seen;
use crate::respond;
use crate::routing::{self, RouteTable, Routed};
use crate::shared::Shared;

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
    // Nothing an outside caller says in the mesh's own headers is believed.
    drop_mesh_headers(&shared, req.headers_mut());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (rsp, service) = route(&shared, &ingress, start, req).await;
    if let Some(log) = &ingress.access_log {
        log.write(&Entry {
            client,
            method: &method,
            path: &path,
            service: service.as_deref(),
            status: rsp.status().as_u16(),
            start,
        });
    }
    rsp
}

/// The request routed and forwarded; the service it went to, when one took it.
async fn route(
    shared: &Arc<Shared>,
    ingress: &Ingress,
    start: Instant,
    req: Request<ClientBody>,
) -> (Response<ProxyBody>, Option<String>) {
    let refused = |e: ProxyError| {
        let rsp = respond::failed(shared.outbound.unknown_metrics(), start, &e);
        (rsp, None)
    };
    if req.method() == Method::CONNECT {
        return refused(ProxyError::BadRequest(
            "CONNECT is not taken at the ingress",
        ));
    }
    let _admitted = match shared.outbound_in_flight.admit() {
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
    // Nothing of the caller's is left to read: no hops made, no mesh header seen.
    let name = service.name.to_string();
    let fresh = (Seen::default(), 0);
    let rsp = lifecycle::forward(shared, start, service, authority, Some(routed), fresh, req).await;
    (rsp, Some(name))
}

/// Removes every `weft-*` header an outside caller sent, counting each by name (the names
/// weft knows; any other as `weft-*`) and logging one line per request that had any.
fn drop_mesh_headers(shared: &Shared, headers: &mut HeaderMap) {
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
    "weft-ctx-override",
    "weft-ctx-deadline",
    "weft-ctx-timeout",
    "weft-ctx-hops",
    "weft-dst-service",
    "weft-orig-proto",
];

/// Where the access log goes: a file, appended, or standard output.
struct AccessLog {
    out: Mutex<Box<dyn Write + Send>>,
}

struct Entry<'a> {
    client: SocketAddr,
    method: &'a Method,
    path: &'a str,
    service: Option<&'a str>,
    status: u16,
    start: Instant,
}

impl AccessLog {
    fn open(path: &Path) -> Result<Self, String> {
        let out: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("ingress.access_log {}: {e}", path.display()))?;
            Box::new(file)
        };
        Ok(Self {
            out: Mutex::new(out),
        })
    }

    /// One JSON line, written whole: lines from concurrent requests never interleave.
    fn write(&self, e: &Entry<'_>) {
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
        })
        .to_string();
        line.push('\n');
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(line.as_bytes());
        }
    }
}
