//! Steady open-loop load for fault-injection tests: requests leave at a fixed rate through a
//! proxy, whatever the answers, and every outcome is kept with its time, so a test can say
//! when failures happened and how many there were.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
pub struct Outcome {
    /// When the request left, from the start of the load.
    pub at: Duration,
    pub latency: Duration,
    /// 0 when no response came.
    pub status: u16,
    pub backend: Option<String>,
}

pub struct Load {
    pub started: Instant,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

type Pool = Arc<Mutex<Vec<SendRequest<Empty<Bytes>>>>>;

impl Load {
    /// `GET http://{host}{path}` through `proxy`, `rps` times a second until stopped.
    pub fn start(proxy: SocketAddr, host: &str, path: &str, rps: f64) -> Self {
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let url = format!("http://{host}{path}");
        let out = outcomes.clone();
        let pool: Pool = Arc::default();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rps));
            let mut inflight = Vec::new();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.wait_for(|s| *s) => break,
                }
                let (url, out, pool) = (url.clone(), out.clone(), pool.clone());
                inflight.push(tokio::spawn(async move {
                    let sent = Instant::now();
                    let (status, backend) = one(proxy, &url, &pool).await;
                    out.lock().unwrap().push(Outcome {
                        at: sent - started,
                        latency: sent.elapsed(),
                        status,
                        backend,
                    });
                }));
                inflight.retain(|t: &tokio::task::JoinHandle<()>| !t.is_finished());
            }
            for t in inflight {
                let _ = t.await;
            }
        });
        Self {
            started,
            outcomes,
            stop,
            task,
        }
    }

    /// Stops sending, waits for answers, and returns every outcome in send order.
    pub async fn finish(self) -> Vec<Outcome> {
        self.stop.send_replace(true);
        let _ = self.task.await;
        let mut v = self.outcomes.lock().unwrap().clone();
        v.sort_by_key(|o| o.at);
        v
    }

    /// Outcomes so far.
    pub fn snapshot(&self) -> Vec<Outcome> {
        self.outcomes.lock().unwrap().clone()
    }
}

async fn one(proxy: SocketAddr, url: &str, pool: &Pool) -> (u16, Option<String>) {
    let mut sender = loop {
        let idle = pool.lock().unwrap().pop();
        match idle {
            Some(mut s) => {
                if !s.is_closed() && s.ready().await.is_ok() {
                    break s;
                }
            }
            None => {
                let Ok(stream) = TcpStream::connect(proxy).await else {
                    return (0, None);
                };
                let Ok((s, conn)) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
                else {
                    return (0, None);
                };
                tokio::spawn(conn);
                break s;
            }
        }
    };
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let req = http::Request::get(url)
        .header("host", host)
        .body(Empty::new())
        .unwrap();
    let Ok(Ok(rsp)) = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req)).await
    else {
        return (0, None);
    };
    let status = rsp.status().as_u16();
    let backend = rsp
        .headers()
        .get("x-backend")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    if rsp.into_body().collect().await.is_ok() {
        pool.lock().unwrap().push(sender);
    }
    (status, backend)
}

/// Failed outcomes (no response, or 5xx).
pub fn failures(outcomes: &[Outcome]) -> Vec<&Outcome> {
    outcomes
        .iter()
        .filter(|o| o.status == 0 || o.status >= 500)
        .collect()
}
