//! A fake Kubernetes API server: the real list/watch protocol over HTTP with real
//! Kubernetes JSON, for testing `weft control` and `weft check` where no API server can run.
//!
//! It keeps objects per resource with a global resourceVersion, answers lists with the
//! current version, and watches with every event after the asked version, then live ones;
//! BOOKMARK events when asked for; `410 Gone` (as a watch ERROR event, like the real one)
//! for a version older than the last compaction; and it can drop every open watch at once.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

use crate::backend::{channel_body, ChannelBody};

type Body = Either<Full<Bytes>, ChannelBody>;

#[derive(Clone, Debug)]
struct Event {
    rv: u64,
    resource: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    rv: u64,
    /// resource → (namespace, name) → object
    objects: BTreeMap<String, BTreeMap<(String, String), Value>>,
    events: Vec<Event>,
    /// Watches from a version below this get `410 Gone`.
    compacted: u64,
}

pub struct FakeKube {
    state: Arc<Mutex<State>>,
    live: broadcast::Sender<Event>,
    /// Bumped to end every open watch.
    drops: watch::Sender<u64>,
    pub bookmark_every: Arc<Mutex<Duration>>,
    /// Requests served, by kind ("list" / "watch" / "get"), for assertions.
    pub counts: Arc<Mutex<BTreeMap<&'static str, usize>>>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    addr: Mutex<Option<SocketAddr>>,
    /// Tokens TokenReview knows: token → (its audiences, the user it authenticates).
    tokens: Mutex<BTreeMap<String, (Vec<String>, Value)>>,
    /// Resources whose CRD is not installed: every request for them is `404`.
    absent: Mutex<std::collections::BTreeSet<String>>,
}

impl FakeKube {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Default::default(),
            live: broadcast::channel(4096).0,
            drops: watch::channel(0).0,
            bookmark_every: Arc::new(Mutex::new(Duration::from_millis(200))),
            counts: Default::default(),
            server: Mutex::new(None),
            addr: Mutex::new(None),
            tokens: Default::default(),
            absent: Default::default(),
        })
    }

    /// Makes `resource` unknown, as a cluster without its CRD (Gateway API's routes, say).
    pub fn without(&self, resource: &str) {
        self.absent.lock().unwrap().insert(resource.to_string());
    }

    /// Starts serving on `addr` (port 0 for any); returns the bound address.
    pub async fn serve(self: &Arc<Self>, addr: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind(addr).await.expect("bind fake API server");
        let addr = listener.local_addr().unwrap();
        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let this = Arc::clone(&this);
                conns.spawn(async move {
                    let svc = service_fn(move |req| {
                        let this = Arc::clone(&this);
                        async move { Ok::<_, Infallible>(this.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        *self.server.lock().unwrap() = Some(task);
        *self.addr.lock().unwrap() = Some(addr);
        addr
    }

    /// Stops listening and ends every connection (the API server goes away).
    pub fn stop(&self) {
        if let Some(t) = self.server.lock().unwrap().take() {
            t.abort();
        }
        self.drop_watches();
    }

    /// A kubeconfig pointing at this server, written into `dir`.
    pub fn kubeconfig(&self, addr: SocketAddr, path: &std::path::Path) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
             users:\n- name: tester\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n\
             current-context: fake\n"
        );
        std::fs::write(path, text).expect("write kubeconfig");
    }

    /// Creates or replaces an object (`resource` as in the URL: `pods`, `endpointslices` …).
    /// Its `metadata.generation` counts changes of its spec, as the API server's does.
    pub fn apply(&self, resource: &str, mut object: Value) {
        let mut s = self.state.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = key_of(&object);
        let objects = s.objects.entry(resource.to_string()).or_default();
        let generation = match objects.get(&key) {
            Some(old) => {
                let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
                if old["spec"] == object["spec"] {
                    g
                } else {
                    g + 1
                }
            }
            None => 1,
        };
        object["metadata"]["generation"] = json!(generation);
        if object["metadata"]["creationTimestamp"].is_null() {
            object["metadata"]["creationTimestamp"] = json!("2026-12-02T00:00:00Z");
        }
        let kind = if objects.insert(key, object.clone()).is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.record(&mut s, resource, kind, object);
    }

    /// An object as the server holds it now.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let s = self.state.lock().unwrap();
        let key = (namespace.to_string(), name.to_string());
        s.objects.get(resource).and_then(|m| m.get(&key)).cloned()
    }

    /// A JSON merge patch (RFC 7386) of an object, or of its `status` subresource alone.
    fn patch(&self, target: &Target, patch: &Value) -> Response<Body> {
        let name = target.name.clone().unwrap_or_default();
        let namespace = target.namespace.clone().unwrap_or_default();
        let Some(mut object) = self.get(&target.resource, &namespace, &name) else {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("{} {name:?} not found", target.resource),
            );
        };
        if target.status {
            merge(&mut object["status"], &patch["status"]);
        } else {
            let mut p = patch.clone();
            if let Some(o) = p.as_object_mut() {
                o.remove("status");
            }
            merge(&mut object, &p);
        }
        *self.counts.lock().unwrap().entry("patch").or_default() += 1;
        self.apply(&target.resource, object);
        let applied = self.get(&target.resource, &namespace, &name).unwrap();
        json_response(StatusCode::OK, &applied)
    }

    pub fn delete(&self, resource: &str, namespace: &str, name: &str) {
        let mut s = self.state.lock().unwrap();
        let key = (namespace.to_string(), name.to_string());
        let Some(mut object) = s.objects.get_mut(resource).and_then(|m| m.remove(&key)) else {
            return;
        };
        s.rv += 1;
        object["metadata"]["resourceVersion"] = json!(s.rv.to_string());
        self.record(&mut s, resource, "DELETED", object);
    }

    fn record(&self, s: &mut State, resource: &str, kind: &'static str, object: Value) {
        let event = Event {
            rv: s.rv,
            resource: resource.to_string(),
            kind,
            object,
        };
        s.events.push(event.clone());
        let _ = self.live.send(event);
    }

    /// Forgets history: a watch resuming from before now gets `410 Gone` and must re-list.
    pub fn compact(&self) {
        let mut s = self.state.lock().unwrap();
        s.compacted = s.rv + 1;
        s.events.clear();
    }

    /// Ends every open watch connection, as an API server restart or a load balancer would.
    pub fn drop_watches(&self) {
        self.drops.send_modify(|n| *n += 1);
    }

    pub fn count(&self, what: &str) -> usize {
        self.counts.lock().unwrap().get(what).copied().unwrap_or(0)
    }

    /// A projected ServiceAccount token for `audiences`, issued to pod `pod` of `account`
    /// (`NS:NAME`) on `node` (`None`: a token from before Kubernetes 1.30 names no node). An
    /// empty `pod` makes a token bound to nothing (`kubectl create token`'s).
    pub fn issue_token(
        &self,
        token: &str,
        audiences: &[&str],
        account: &str,
        pod: &str,
        node: Option<&str>,
    ) {
        let mut extra = match pod {
            "" => json!({}),
            pod => json!({ "authentication.kubernetes.io/pod-name": [pod] }),
        };
        if let Some(node) = node {
            extra["authentication.kubernetes.io/node-name"] = json!([node]);
        }
        let user = json!({
            "username": format!("system:serviceaccount:{account}"),
            "extra": extra,
        });
        let audiences = audiences.iter().map(|a| a.to_string()).collect();
        self.tokens
            .lock()
            .unwrap()
            .insert(token.to_string(), (audiences, user));
    }

    /// The pods proxy subresource, `/api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH`: a GET
    /// of PATH on the pod's IP and PORT, its answer passed back as the API server does.
    async fn pod_proxy(&self, path: &str) -> Option<Response<Body>> {
        let parts: Vec<&str> = path.trim_matches('/').splitn(8, '/').collect();
        let ["api", "v1", "namespaces", ns, "pods", name_port, "proxy", ..] = parts.as_slice()
        else {
            return None;
        };
        let rest = parts.get(7).copied().unwrap_or("");
        let (name, port) = name_port.split_once(':')?;
        *self.counts.lock().unwrap().entry("proxy").or_default() += 1;
        let ip = {
            let s = self.state.lock().unwrap();
            let pod = s
                .objects
                .get("pods")?
                .get(&(ns.to_string(), name.to_string()))?;
            pod["status"]["podIP"].as_str()?.to_string()
        };
        let addr: SocketAddr = format!("{ip}:{port}").parse().ok()?;
        // Tests reach loopback only: a pod with a cluster address is out of reach.
        if !addr.ip().is_loopback() {
            // 502, as the API server answers a proxy it cannot complete (a 503 the client
            // would retry).
            return Some(status(
                StatusCode::BAD_GATEWAY,
                "BadGateway",
                &format!("error trying to reach service: dial tcp {addr}: no route to host"),
            ));
        }
        let answer = crate::client::get(addr, "pod", &format!("/{rest}")).await;
        Some(match answer {
            Ok(rsp) => Response::builder()
                .status(rsp.status)
                .body(Either::Left(Full::new(Bytes::from(rsp.body.to_vec()))))
                .unwrap(),
            Err(e) => status(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                &e.to_string(),
            ),
        })
    }

    /// TokenReview: authenticated when the token is known and made for an audience asked.
    fn review(&self, body: &[u8]) -> Response<Body> {
        *self
            .counts
            .lock()
            .unwrap()
            .entry("tokenreview")
            .or_default() += 1;
        let Ok(asked) = serde_json::from_slice::<Value>(body) else {
            return status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON");
        };
        let token = asked["spec"]["token"].as_str().unwrap_or_default();
        let wanted: Vec<&str> = asked["spec"]["audiences"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let tokens = self.tokens.lock().unwrap();
        let status = match tokens.get(token) {
            Some((audiences, user)) if audiences.iter().any(|a| wanted.contains(&a.as_str())) => {
                json!({ "authenticated": true, "user": user, "audiences": audiences })
            }
            Some(_) => json!({ "authenticated": false, "error": "token audiences are invalid" }),
            None => json!({ "authenticated": false, "error": "invalid bearer token" }),
        };
        let mut answer = asked.clone();
        answer["status"] = status;
        answer["apiVersion"] = json!("authentication.k8s.io/v1");
        answer["kind"] = json!("TokenReview");
        json_response(StatusCode::CREATED, &answer)
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let post = req.method() == http::Method::POST;
        let patching = req.method() == http::Method::PATCH;
        let query: BTreeMap<String, String> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), decode(v)))
            .collect();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if post && path == "/apis/authentication.k8s.io/v1/tokenreviews" {
            return self.review(&body);
        }
        if let Some(rsp) = self.pod_proxy(&path).await {
            return rsp;
        }
        let Some(target) = Target::parse(&path) else {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("no route {path}"),
            );
        };
        if self.absent.lock().unwrap().contains(&target.resource) {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
        if patching {
            return match serde_json::from_slice::<Value>(&body) {
                Ok(patch) if target.name.is_some() => self.patch(&target, &patch),
                _ => status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "a merge patch of one object",
                ),
            };
        }
        let selector = query.get("labelSelector").cloned().unwrap_or_default();
        if let Some(name) = &target.name {
            *self.counts.lock().unwrap().entry("get").or_default() += 1;
            let s = self.state.lock().unwrap();
            let key = (target.namespace.clone().unwrap_or_default(), name.clone());
            return match s.objects.get(&target.resource).and_then(|m| m.get(&key)) {
                Some(o) => json_response(StatusCode::OK, o),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("{} {name:?} not found", target.resource),
                ),
            };
        }
        let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
        if !watching {
            *self.counts.lock().unwrap().entry("list").or_default() += 1;
            let s = self.state.lock().unwrap();
            let items: Vec<Value> = s
                .objects
                .get(&target.resource)
                .into_iter()
                .flat_map(|m| m.values())
                .filter(|o| target.matches(o, &selector))
                .cloned()
                .collect();
            let list = json!({
                "kind": format!("{}List", kind_of(&target.resource)),
                "apiVersion": api_version(&target.resource),
                "metadata": {"resourceVersion": s.rv.to_string()},
                "items": items,
            });
            return json_response(StatusCode::OK, &list);
        }
        *self.counts.lock().unwrap().entry("watch").or_default() += 1;
        let from: u64 = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bookmarks = query.get("allowWatchBookmarks").map(String::as_str) == Some("true");
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(300));
        let (tx, body) = channel_body();
        let mut live = self.live.subscribe();
        let (backlog, expired, current) = {
            let s = self.state.lock().unwrap();
            let expired = from != 0 && from < s.compacted;
            let backlog: Vec<Event> = s
                .events
                .iter()
                .filter(|e| e.rv > from && e.resource == target.resource)
                .cloned()
                .collect();
            (backlog, expired, s.rv)
        };
        let mut drops = self.drops.subscribe();
        drops.borrow_and_update();
        let every = *self.bookmark_every.lock().unwrap();
        let counts = Arc::clone(&self.counts);
        tokio::spawn(async move {
            let line = |v: Value| Frame::data(Bytes::from(format!("{v}\n")));
            if expired {
                let gone = json!({"type": "ERROR", "object": status_json(410, "Expired",
                    &format!("too old resource version: {from} ({current})"))});
                let _ = tx.send(line(gone)).await;
                return;
            }
            let mut last = from;
            for e in backlog {
                let event = json!({"type": e.kind, "object": e.object});
                if target.matches(&e.object, &selector) && tx.send(line(event)).await.is_err() {
                    return;
                }
                last = e.rv;
            }
            let end = tokio::time::sleep(timeout);
            tokio::pin!(end);
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = &mut end => return,
                    _ = drops.changed() => return,
                    _ = tick.tick(), if bookmarks => {
                        let bm = json!({"type": "BOOKMARK", "object": {
                            "kind": kind_of(&target.resource),
                            "apiVersion": api_version(&target.resource),
                            "metadata": {"resourceVersion": last.max(from).to_string()}}});
                        if tx.send(line(bm)).await.is_err() { return; }
                        *counts.lock().unwrap().entry("bookmark").or_default() += 1;
                    }
                    e = live.recv() => match e {
                        Ok(e) if e.rv > last && e.resource == target.resource => {
                            last = e.rv;
                            if target.matches(&e.object, &selector)
                                && tx.send(line(json!({"type": e.kind, "object": e.object}))).await.is_err()
                            {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    },
                }
            }
        });
        Response::builder()
            .header("content-type", "application/json")
            .body(Either::Right(body))
            .unwrap()
    }
}

/// What a request path names: `/api/v1[/namespaces/NS]/RESOURCE[/NAME]`, same under `/apis/G/V`.
struct Target {
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    /// The `status` subresource.
    status: bool,
}

impl Target {
    fn parse(path: &str) -> Option<Self> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let rest = match parts.as_slice() {
            ["api", "v1", rest @ ..] => rest,
            ["apis", _, _, rest @ ..] => rest,
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            _ => (None, rest),
        };
        match rest {
            [resource] => Some(Self {
                resource: resource.to_string(),
                namespace,
                name: None,
                status: false,
            }),
            [resource, name] => Some(Self {
                resource: resource.to_string(),
                namespace,
                name: Some(name.to_string()),
                status: false,
            }),
            [resource, name, "status"] => Some(Self {
                resource: resource.to_string(),
                namespace,
                name: Some(name.to_string()),
                status: true,
            }),
            _ => None,
        }
    }

    fn matches(&self, object: &Value, selector: &str) -> bool {
        if let Some(ns) = &self.namespace {
            if object["metadata"]["namespace"].as_str() != Some(ns) {
                return false;
            }
        }
        selector.split(',').filter(|s| !s.is_empty()).all(|term| {
            let Some((k, v)) = term.split_once('=') else {
                return false;
            };
            object["metadata"]["labels"][k].as_str() == Some(v.trim_start_matches('='))
        })
    }
}

fn key_of(object: &Value) -> (String, String) {
    let meta = &object["metadata"];
    (
        meta["namespace"].as_str().unwrap_or("").to_string(),
        meta["name"]
            .as_str()
            .expect("object has a name")
            .to_string(),
    )
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "pods" => "Pod",
        "services" => "Service",
        "nodes" => "Node",
        "endpointslices" => "EndpointSlice",
        "deployments" => "Deployment",
        "daemonsets" => "DaemonSet",
        "secrets" => "Secret",
        "configmaps" => "ConfigMap",
        "httproutes" => "HTTPRoute",
        "grpcroutes" => "GRPCRoute",
        _ => "Unknown",
    }
}

fn api_version(resource: &str) -> &'static str {
    match resource {
        "endpointslices" => "discovery.k8s.io/v1",
        "deployments" | "daemonsets" => "apps/v1",
        "httproutes" | "grpcroutes" => "gateway.networking.k8s.io/v1",
        _ => "v1",
    }
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().unwrap();
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn decode(v: &str) -> String {
    let mut out = Vec::new();
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_json(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    json_response(code, &status_json(code.as_u16(), reason, message))
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Either::Left(Full::new(Bytes::from(v.to_string()))))
        .unwrap()
}
