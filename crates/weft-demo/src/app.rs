//! `weft hello-world`: the demo app. With `--target` it calls that service through its
//! node's proxy and answers `Hello (IP) world (IP)!!`; without, it answers `world (IP)`,
//! over HTTP/1.1 or HTTP/2, and as gRPC (`weft.demo.World/Greet`). Latency and failure
//! rate can be set at start and changed at run time. `GET /counts` tells what the instance
//! itself answered, so what the mesh reports can be checked against the app's own count.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::grpc;
use crate::proxy_client::ProxyClient;

type Body = BoxBody<Bytes, Infallible>;

/// Headers a well-behaved meshed app copies from its request onto the calls it makes.
const PROPAGATED_PREFIXES: &[&str] = &["weft-ctx-", "x-b3-"];
const PROPAGATED: &[&str] = &["traceparent", "tracestate", "b3", "weft-request-id"];

#[derive(Clone, Debug)]
pub struct AppConfig {
    /// What this app calls itself in its answer: `Hello`, `world`.
    pub text: String,
    /// The service to call through the proxy, if any.
    pub target: Option<String>,
    pub proxy: Option<SocketAddr>,
    pub latency: Duration,
    pub failure_rate: f64,
}

pub struct App {
    config: AppConfig,
    ip: String,
    latency_ms: AtomicU64,
    /// Failure rate in millionths, so it fits an atomic.
    failure_ppm: AtomicU64,
    client: Option<ProxyClient>,
    counts: Counts,
}

/// What this instance answered since it started (its own controls and `/counts` aside),
/// and how many of those answers failed on purpose.
#[derive(Default)]
struct Counts {
    answered: AtomicU64,
    failed: AtomicU64,
}

/// The longest an instance told to stop waits for the requests it is answering.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves the app on `listener` until `stop` turns true; then it takes no new connection,
/// and returns once the requests in flight are answered (HTTP/2 connections get a GOAWAY,
/// idle HTTP/1.1 ones are closed), or after [`DRAIN`].
pub async fn serve(listener: TcpListener, config: AppConfig, mut stop: watch::Receiver<bool>) {
    let ip = listener
        .local_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let app = Arc::new(App {
        latency_ms: AtomicU64::new(config.latency.as_millis() as u64),
        failure_ppm: AtomicU64::new(rate_to_ppm(config.failure_rate)),
        client: config.proxy.map(ProxyClient::new),
        counts: Counts::default(),
        config,
        ip,
    });
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        // An HTTP/2 answer is written as HEADERS, then DATA: with Nagle on, the second waits
        // for the peer's delayed ACK, and every answer would take 40 ms more.
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        let mut stop = stop.clone();
        connections.spawn(async move {
            let svc = service_fn(move |req| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(app.handle(req).await) }
            });
            // HTTP/1.1 or, for a client that opens with the preface, HTTP/2 (gRPC).
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stop.wait_for(|s| *s) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
    }
    drop(listener);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, drained).await.is_err() {
        tracing::warn!(app = %app.config.text, ip = %app.ip, "requests still in flight after {DRAIN:?}: cut off");
    }
}

fn rate_to_ppm(rate: f64) -> u64 {
    (rate.clamp(0.0, 1.0) * 1_000_000.0).round() as u64
}

fn query(req: &Request<Incoming>, key: &str) -> Option<f64> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut rsp = Response::new(Full::new(Bytes::from(body)).boxed());
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    rsp
}

impl App {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        match (req.method(), req.uri().path()) {
            (&Method::POST, grpc::GREET) if grpc::is_grpc(&req) => self.greet().await,
            (&Method::POST, "/set-latency") => match query(&req, "ms") {
                Some(ms) if ms >= 0.0 => {
                    self.latency_ms.store(ms as u64, Ordering::Relaxed);
                    text(StatusCode::OK, format!("latency {ms} ms\n"))
                }
                _ => text(StatusCode::BAD_REQUEST, "want ?ms=N\n".into()),
            },
            (&Method::POST, "/set-failure-rate") => match query(&req, "rate") {
                Some(r) if (0.0..=1.0).contains(&r) => {
                    self.failure_ppm.store(rate_to_ppm(r), Ordering::Relaxed);
                    text(StatusCode::OK, format!("failure rate {r}\n"))
                }
                _ => text(StatusCode::BAD_REQUEST, "want ?rate=0..1\n".into()),
            },
            (&Method::GET, "/counts") => self.counts(),
            (&Method::GET, _) => self.answer(req.headers()).await,
            _ => text(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET, or POST /set-latency, /set-failure-rate\n".into(),
            ),
        }
    }

    /// `{"answered":N,"failed":M}`.
    fn counts(&self) -> Response<Body> {
        let body = format!(
            "{{\"answered\":{},\"failed\":{}}}\n",
            self.counts.answered.load(Ordering::Relaxed),
            self.counts.failed.load(Ordering::Relaxed),
        );
        let mut rsp = text(StatusCode::OK, body);
        rsp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        rsp
    }

    /// Waits out the latency set, and says whether this answer is to fail on purpose; the
    /// answer is counted either way.
    async fn latency_and_failure(&self) -> bool {
        let latency = self.latency_ms.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let ppm = self.failure_ppm.load(Ordering::Relaxed);
        let fail = ppm > 0 && fastrand::u64(..1_000_000) < ppm;
        self.counts.answered.fetch_add(1, Ordering::Relaxed);
        if fail {
            self.counts.failed.fetch_add(1, Ordering::Relaxed);
        }
        fail
    }

    /// The gRPC answer: `world (IP)`, or UNAVAILABLE when failing on purpose.
    async fn greet(&self) -> Response<Body> {
        let me = format!("{} ({})", self.config.text, self.ip);
        if self.latency_and_failure().await {
            return grpc::answer(&format!("{me} failed on purpose"), grpc::UNAVAILABLE);
        }
        grpc::answer(&me, 0)
    }

    async fn answer(&self, incoming: &HeaderMap) -> Response<Body> {
        if self.latency_and_failure().await {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{} ({}) failed on purpose\n", self.config.text, self.ip),
            );
        }
        let me = format!("{} ({})", self.config.text, self.ip);
        let (Some(target), Some(client)) = (&self.config.target, &self.client) else {
            return text(StatusCode::OK, me);
        };
        let url = format!("http://{target}/");
        match client.get(&url, propagated(incoming)).await {
            Ok((rsp, body)) if rsp.status().is_success() => {
                let theirs = String::from_utf8_lossy(&body);
                text(StatusCode::OK, format!("{me} {}!!\n", theirs.trim()))
            }
            Ok((rsp, body)) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{me}: {target} answered {}: {}\n",
                    rsp.status(),
                    String::from_utf8_lossy(&body).trim()
                ),
            ),
            Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{me}: {e}\n")),
        }
    }
}

fn propagated(incoming: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in incoming {
        let n = name.as_str();
        if PROPAGATED.contains(&n) || PROPAGATED_PREFIXES.iter().any(|p| n.starts_with(p)) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn counts_after(failure_rate: f64, requests: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = ProxyClient::new(listener.local_addr().unwrap());
        let config = AppConfig {
            text: "world".into(),
            target: None,
            proxy: None,
            latency: Duration::ZERO,
            failure_rate,
        };
        let (_stop, stopped) = watch::channel(false);
        tokio::spawn(serve(listener, config, stopped));
        for _ in 0..requests {
            client.get("http://world/", HeaderMap::new()).await.unwrap();
        }
        let (rsp, body) = client
            .get("http://world/counts", HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(
            rsp.headers()[http::header::CONTENT_TYPE],
            "application/json"
        );
        String::from_utf8_lossy(&body).trim().to_string()
    }

    #[tokio::test]
    async fn an_instance_counts_its_answers_and_the_failures_it_made_on_purpose() {
        assert_eq!(counts_after(1.0, 3).await, r#"{"answered":3,"failed":3}"#);
        assert_eq!(counts_after(0.0, 2).await, r#"{"answered":2,"failed":0}"#);
    }
}
