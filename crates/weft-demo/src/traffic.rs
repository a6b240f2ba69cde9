//! An open-loop traffic generator: requests leave at a fixed rate whatever the answers, the
//! way real users arrive, spread over the nodes' proxies. It keeps its own counts, so tests
//! can check the dashboard against them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use tokio::sync::watch;

use crate::proxy_client::ProxyClient;

/// Requests in flight at once, at most; beyond it ticks are skipped and counted.
const MAX_IN_FLIGHT: u64 = 512;

#[derive(Default, Debug)]
pub struct Counts {
    pub sent: AtomicU64,
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub skipped: AtomicU64,
    in_flight: AtomicU64,
}

/// Sends `GET http://{service}/` `rps` times a second, round-robin over `clients`.
pub async fn run(
    clients: Vec<Arc<ProxyClient>>,
    service: String,
    rps: f64,
    counts: Arc<Counts>,
    mut stop: watch::Receiver<bool>,
) {
    if rps <= 0.0 || clients.is_empty() {
        return;
    }
    let url = format!("http://{service}/");
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rps));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n = 0usize;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
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
