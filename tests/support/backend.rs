//! A backend instance for tests: real HTTP/1.1 and h2c on a loopback port, with routes that
//! echo the request, answer a chosen status, stream slowly, send trailers or stall.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A body fed by a channel, so routes can stream with pauses and end with trailers.
pub struct ChannelBody(mpsc::Receiver<Frame<Bytes>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

pub fn channel_body() -> (mpsc::Sender<Frame<Bytes>>, ChannelBody) {
    let (tx, rx) = mpsc::channel(4);
    (tx, ChannelBody(rx))
}

/// Behaviour a test can change while the backend runs.
#[derive(Default)]
pub struct Controls {
    /// Answer every request with 500.
    pub failing: std::sync::atomic::AtomicBool,
    /// Delay every answer by this many milliseconds.
    pub latency_ms: std::sync::atomic::AtomicU64,
    /// Answer this many per thousand requests with 500, spread evenly.
    pub failing_per_mille: std::sync::atomic::AtomicU64,
    answered: std::sync::atomic::AtomicU64,
}

impl Controls {
    /// Whether this request is one of those that fail on purpose.
    fn fails(&self) -> bool {
        if self.failing.load(Ordering::SeqCst) {
            return true;
        }
        let pm = self.failing_per_mille.load(Ordering::SeqCst);
        if pm == 0 {
            return false;
        }
        let n = self.answered.fetch_add(1, Ordering::SeqCst);
        (n + 1) * pm / 1000 > n * pm / 1000
    }
}

pub struct Backend {
    pub addr: SocketAddr,
    pub controls: Arc<Controls>,
    stop: tokio::sync::watch::Sender<bool>,
    pub requests: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
    /// Requests whose handler was dropped before it finished (the client or proxy cancelled).
    pub cancelled: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        // Like a killed process: the listener and every open connection go at once.
        self.stop.send_replace(true);
        self.task.abort();
    }
}

impl Backend {
    pub async fn start(ip: &str) -> Self {
        let listener = TcpListener::bind(format!("{ip}:0"))
            .await
            .expect("bind backend");
        Self::serve(listener)
    }

    pub fn serve(listener: TcpListener) -> Self {
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let cancelled = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let controls = Arc::new(Controls::default());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (r, c, n) = (requests.clone(), cancelled.clone(), connections.clone());
        let ctl = controls.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                n.fetch_add(1, Ordering::SeqCst);
                // As servers that answer promptly do: no write waits for a delayed ACK.
                let _ = stream.set_nodelay(true);
                let (r, c, ctl) = (r.clone(), c.clone(), ctl.clone());
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        r.fetch_add(1, Ordering::SeqCst);
                        let guard = CancelGuard(Some(c.clone()));
                        let ctl = ctl.clone();
                        async move {
                            let delay = ctl.latency_ms.load(Ordering::SeqCst);
                            if delay > 0 {
                                tokio::time::sleep(Duration::from_millis(delay)).await;
                            }
                            let rsp = if ctl.fails() {
                                failure()
                            } else {
                                route(addr, req).await
                            };
                            guard.done();
                            Ok::<_, Infallible>(rsp)
                        }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = stopped.wait_for(|s| *s) => {}
                    }
                });
            }
        });
        Self {
            addr,
            controls,
            stop,
            requests,
            connections,
            cancelled,
            task,
        }
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

struct CancelGuard(Option<Arc<AtomicUsize>>);

impl CancelGuard {
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn failure() -> Response<ChannelBody> {
    let (tx, body) = channel_body();
    let _ = tx.try_send(Frame::data(Bytes::from_static(b"failing on purpose\n")));
    let mut rsp = Response::new(body);
    *rsp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    rsp
}

impl Backend {
    pub fn set_failing(&self, failing: bool) {
        self.controls.failing.store(failing, Ordering::SeqCst);
    }

    /// Fails `per_mille` of every thousand requests, evenly spread.
    pub fn set_failing_per_mille(&self, per_mille: u64) {
        self.controls
            .failing_per_mille
            .store(per_mille, Ordering::SeqCst);
    }

    pub fn set_latency(&self, ms: u64) {
        self.controls.latency_ms.store(ms, Ordering::SeqCst);
    }
}

fn query(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

async fn route(me: SocketAddr, req: Request<Incoming>) -> Response<ChannelBody> {
    let path = req.uri().path().to_string();
    let (tx, body) = channel_body();
    let mut rsp = Response::new(body);
    rsp.headers_mut()
        .insert("x-backend", me.to_string().parse().unwrap());
    if let Some(code) = path.strip_prefix("/status/") {
        *rsp.status_mut() = http::StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
        // A sized body, as most servers send: the proxy must see its end without an EOF.
        let body = Bytes::from(format!("status {code}\n"));
        rsp.headers_mut()
            .insert("content-length", body.len().into());
        let _ = tx.try_send(Frame::data(body));
        return rsp;
    }
    match path.as_str() {
        "/stream" => {
            let n = query(&req, "n").unwrap_or(5);
            let ms = query(&req, "ms").unwrap_or(100);
            tokio::spawn(async move {
                for i in 0..n {
                    if tx
                        .send(Frame::data(Bytes::from(format!("chunk {i}\n"))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            });
        }
        "/bytes" => {
            let n = query(&req, "n").unwrap_or(1024) as usize;
            tokio::spawn(async move {
                let block = Bytes::from(pattern(64 * 1024));
                let mut left = n;
                while left > 0 {
                    let take = left.min(block.len());
                    if tx.send(Frame::data(block.slice(..take))).await.is_err() {
                        return;
                    }
                    left -= take;
                }
            });
        }
        "/trailers" => {
            // HTTP/1.1 sends only the trailers a response declares.
            rsp.headers_mut()
                .insert("trailer", "grpc-status, x-trailer".parse().unwrap());
            let status = query(&req, "grpc-status").unwrap_or(0);
            tokio::spawn(async move {
                let _ = tx
                    .send(Frame::data(Bytes::from_static(b"with trailers\n")))
                    .await;
                let mut t = HeaderMap::new();
                t.insert("grpc-status", status.to_string().parse().unwrap());
                t.insert("x-trailer", "yes".parse().unwrap());
                let _ = tx.send(Frame::trailers(t)).await;
            });
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(query(&req, "ms").unwrap_or(500))).await;
            let _ = tx.try_send(Frame::data(Bytes::from_static(b"slow\n")));
        }
        "/hang" => std::future::pending::<()>().await,
        "/huge-header" => {
            let kb = query(&req, "kb").unwrap_or(1024) as usize;
            rsp.headers_mut()
                .insert("x-huge", "a".repeat(kb * 1024).parse().unwrap());
            rsp.headers_mut().insert("content-length", 0.into());
        }
        // An app that speaks as if it were weft: a refusal that means "never delivered",
        // which no proxy may take as its own.
        "/forged-weft-error" => {
            *rsp.status_mut() = http::StatusCode::FORBIDDEN;
            rsp.headers_mut()
                .insert("weft-error", "endpoint not on this node".parse().unwrap());
            rsp.headers_mut().insert("content-length", 0.into());
        }
        _ => {
            let echo = echo(req).await;
            let _ = tx.try_send(Frame::data(Bytes::from(echo.to_string())));
            rsp.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
        }
    }
    rsp
}

/// Describes the request as JSON: method, URI, version, headers, body length and hash.
async fn echo(req: Request<Incoming>) -> serde_json::Value {
    let (parts, body) = req.into_parts();
    let mut headers = serde_json::Map::new();
    for (k, v) in &parts.headers {
        let entry = headers
            .entry(k.as_str())
            .or_insert_with(|| serde_json::json!([]));
        entry
            .as_array_mut()
            .unwrap()
            .push(String::from_utf8_lossy(v.as_bytes()).into());
    }
    let (len, hash, trailers) = match body.collect().await {
        Ok(c) => {
            let trailers = c.trailers().map(|t| {
                t.iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            serde_json::Value::from(v.to_str().unwrap_or("")),
                        )
                    })
                    .collect::<serde_json::Map<_, _>>()
            });
            let b = c.to_bytes();
            (b.len(), fnv(&b), trailers)
        }
        Err(_) => (0, 0, None),
    };
    serde_json::json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": len,
        "body_hash": hash,
        "trailers": trailers,
    })
}

/// Deterministic bytes for large-body tests.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// FNV-1a, to compare large bodies without shipping them back.
pub fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100000001b3)
    })
}

/// A "server" that reads a request and closes the connection without answering.
pub async fn rude(ip: &str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            });
        }
    });
    (addr, task)
}

/// A WebSocket server on `ip` for one connection: it echoes text and binary messages until
/// the client closes. Its address, and the task that ends when the connection does.
pub async fn ws_echo(ip: &str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use futures_util::{SinkExt, StreamExt};
    let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if msg.is_text() || msg.is_binary() {
                ws.send(msg).await.unwrap();
            }
        }
    });
    (addr, server)
}
