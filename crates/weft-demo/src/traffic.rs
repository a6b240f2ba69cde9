//! An open-loop traffic generator: requests leave at a set rate whatever the answers, the
//! way real users arrive, spread over the nodes' proxies. It keeps its own counts, so tests
//! can check the dashboard against them, and its rate changes at run time through a small
//! HTTP listener ([`serve_control`]: `GET`/`POST /traffic`), so an autoscaler has a step in
//! load to follow.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::proxy_client::ProxyClient;

/// Requests in flight at once, at most; beyond it ticks are skipped and counted.
const MAX_IN_FLIGHT: u64 = 512;
/// The highest rate the generator takes: beyond it one process measures itself.
pub const MAX_RPS: f64 = 10_000.0;
/// Where the demo's traffic control listens by default, on the first node's address.
pub const CONTROL_PORT: u16 = 8085;
/// The longest body `POST /traffic` reads.
const MAX_BODY: usize = 1024;

#[derive(Default, Debug)]
pub struct Counts {
    pub sent: AtomicU64,
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub skipped: AtomicU64,
    in_flight: AtomicU64,
}

impl Counts {
    /// `{"sent":…,"ok":…,"failed":…,"skipped":…,"in_flight":…}` with the rate first.
    fn json(&self, rps: f64) -> serde_json::Value {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "rps": rps,
            "sent": n(&self.sent),
            "ok": n(&self.ok),
            "failed": n(&self.failed),
            "skipped": n(&self.skipped),
            "in_flight": n(&self.in_flight),
        })
    }
}

/// Why a rate was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BadRate {
    #[error("want rps=N (requests per second, 0 to {MAX_RPS}) in the query or the body")]
    Missing,
    #[error("rps={0:?} is not a number of requests per second (0 to {MAX_RPS})")]
    NotANumber(String),
    #[error("rps={0} is out of range: from 0 to {MAX_RPS} requests per second")]
    OutOfRange(f64),
}

/// A rate as given (`50`, `12.5`): a finite number from 0 to [`MAX_RPS`].
pub fn parse_rate(v: &str) -> Result<f64, BadRate> {
    let v = v.trim();
    let rps: f64 = v.parse().map_err(|_| BadRate::NotANumber(v.into()))?;
    if !rps.is_finite() {
        return Err(BadRate::NotANumber(v.into()));
    }
    if !(0.0..=MAX_RPS).contains(&rps) {
        return Err(BadRate::OutOfRange(rps));
    }
    Ok(rps)
}

/// Sends `GET http://{service}/` at the rate `rps` holds (none while it is 0), round-robin
/// over `clients`. A new rate takes effect at once, its first request a period later.
pub async fn run(
    clients: Vec<Arc<ProxyClient>>,
    service: String,
    mut rps: watch::Receiver<f64>,
    counts: Arc<Counts>,
    mut stop: watch::Receiver<bool>,
) {
    if clients.is_empty() {
        return;
    }
    let url = format!("http://{service}/");
    let mut n = 0usize;
    loop {
        let rate = *rps.borrow_and_update();
        if rate <= 0.0 {
            tokio::select! {
                changed = rps.changed() => if changed.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
            continue;
        }
        let period = Duration::from_secs_f64(1.0 / rate);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = rps.changed() => match changed {
                    Ok(()) => break,
                    Err(_) => return,
                },
                _ = stop.wait_for(|s| *s) => return,
            }
            if counts.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                counts.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let client = Arc::clone(&clients[n % clients.len()]);
            n += 1;
            let (counts, url) = (Arc::clone(&counts), url.clone());
            counts.sent.fetch_add(1, Ordering::Relaxed);
            counts.in_flight.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                match client.get(&url, HeaderMap::new()).await {
                    Ok((rsp, _)) if rsp.status().is_success() => {
                        counts.ok.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => counts.failed.fetch_add(1, Ordering::Relaxed),
                };
                counts.in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }
}

/// The traffic control: `GET /traffic` answers the rate and the counts as JSON; `POST
/// /traffic` with `rps=N` in the query or the body (a form) sets a new rate and answers the
/// same. Serves until `stop` turns true.
pub async fn serve_control(
    listener: TcpListener,
    rps: Arc<watch::Sender<f64>>,
    counts: Arc<Counts>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let (rps, counts) = (Arc::clone(&rps), Arc::clone(&counts));
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let (rps, counts) = (Arc::clone(&rps), Arc::clone(&counts));
                async move { Ok::<_, Infallible>(control(req, &rps, &counts).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn control(
    req: Request<Incoming>,
    rps: &watch::Sender<f64>,
    counts: &Counts,
) -> Response<Full<Bytes>> {
    if req.uri().path() != "/traffic" {
        return answer(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": "not found; try GET /traffic, or POST /traffic with rps=N" }),
        );
    }
    match *req.method() {
        Method::GET => answer(StatusCode::OK, counts.json(*rps.borrow())),
        Method::POST => {
            let query = req.uri().query().map(str::to_owned);
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    let error = format!("the body is over {MAX_BODY} bytes: want rps=N");
                    return answer(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({ "error": error }),
                    );
                }
            };
            let given =
                rate_in(query.as_deref()).or_else(|| rate_in(std::str::from_utf8(&body).ok()));
            match given.ok_or(BadRate::Missing).and_then(|v| parse_rate(&v)) {
                Ok(new) => {
                    rps.send_replace(new);
                    tracing::info!(rps = new, "traffic rate changed");
                    answer(StatusCode::OK, counts.json(new))
                }
                Err(e) => answer(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({ "error": e.to_string() }),
                ),
            }
        }
        _ => answer(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({ "error": "GET /traffic, or POST /traffic with rps=N" }),
        ),
    }
}

/// The value of `rps` in a query or a form body (`rps=50`, `a=1&rps=50`).
fn rate_in(form: Option<&str>) -> Option<String> {
    form?
        .trim()
        .split('&')
        .find_map(|kv| kv.strip_prefix("rps="))
        .map(str::to_owned)
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut rsp = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    rsp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_numbers_within_range() {
        assert_eq!(parse_rate("50"), Ok(50.0));
        assert_eq!(parse_rate(" 12.5 "), Ok(12.5));
        assert_eq!(parse_rate("0"), Ok(0.0));
        assert_eq!(parse_rate("fast"), Err(BadRate::NotANumber("fast".into())));
        assert_eq!(parse_rate("NaN"), Err(BadRate::NotANumber("NaN".into())));
        assert_eq!(parse_rate("-1"), Err(BadRate::OutOfRange(-1.0)));
        assert_eq!(parse_rate("10001"), Err(BadRate::OutOfRange(10001.0)));
    }

    #[test]
    fn the_rate_is_read_from_a_query_or_a_form() {
        assert_eq!(rate_in(Some("rps=50")), Some("50".into()));
        assert_eq!(rate_in(Some("x=1&rps=7\n")), Some("7".into()));
        assert_eq!(rate_in(Some("rate=7")), None);
        assert_eq!(rate_in(None), None);
    }

    async fn call(addr: std::net::SocketAddr, method: &str, target: &str) -> (u16, String) {
        call_with(addr, method, target, "").await
    }

    async fn call_with(
        addr: std::net::SocketAddr,
        method: &str,
        target: &str,
        body: &str,
    ) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: demo\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out[9..12].parse().unwrap();
        let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
        (status, body)
    }

    #[tokio::test]
    async fn the_control_changes_the_rate_and_refuses_bad_input() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = watch::channel(10.0);
        let (_stop, stopped) = watch::channel(false);
        let counts = Arc::new(Counts::default());
        tokio::spawn(serve_control(listener, Arc::new(tx), counts, stopped));

        let (status, body) = call(addr, "POST", "/traffic?rps=50").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(*rx.borrow_and_update(), 50.0);
        let (status, body) = call(addr, "GET", "/traffic").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status, v["rps"].as_f64(), v["failed"].as_u64()),
            (200, Some(50.0), Some(0))
        );

        for (target, says) in [
            ("/traffic?rps=lots", "not a number"),
            ("/traffic?rps=-5", "out of range"),
            ("/traffic?rps=20000", "out of range"),
            ("/traffic", "want rps=N"),
        ] {
            let (status, body) = call(addr, "POST", target).await;
            assert_eq!(status, 400, "{target}: {body}");
            assert!(body.contains(says), "{target}: {body}");
        }
        assert_eq!(*rx.borrow(), 50.0);
        let (status, body) = call_with(addr, "POST", "/traffic", "rps=25").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(*rx.borrow_and_update(), 25.0);
        assert_eq!(call(addr, "DELETE", "/traffic").await.0, 405);
        assert_eq!(call(addr, "GET", "/elsewhere").await.0, 404);
    }
}
