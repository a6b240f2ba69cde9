//! Picks an endpoint for a request: power of two choices over outstanding requests.
//! The [`Balance`] trait is the seam where peak-EWMA and failure accrual plug in.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use weft_core::Endpoint;
use weft_metrics::RouteMetrics;

/// One endpoint as the data plane tracks it; survives endpoint-set updates that keep it.
pub struct EndpointState {
    pub endpoint: Endpoint,
    /// `ip:port`, the `endpoint` metric label and the `weft-dst-endpoint` value.
    pub label: String,
    pub metrics: RouteMetrics,
    outstanding: AtomicUsize,
}

impl EndpointState {
    pub fn new(endpoint: Endpoint, metrics: RouteMetrics) -> Self {
        Self {
            label: endpoint.addr.to_string(),
            endpoint,
            metrics,
            outstanding: AtomicUsize::new(0),
        }
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Counts a request as outstanding until the guard drops (at the end of its response).
    pub fn start(self: &Arc<Self>) -> LoadGuard {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        LoadGuard(Arc::clone(self))
    }
}

pub struct LoadGuard(Arc<EndpointState>);

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

pub trait Balance: Send + Sync {
    fn pick<'a>(&self, endpoints: &'a [Arc<EndpointState>]) -> Option<&'a Arc<EndpointState>>;
}

/// Two random endpoints, the less loaded one wins: near-best choice without global state.
#[derive(Default)]
pub struct PowerOfTwo;

impl Balance for PowerOfTwo {
    fn pick<'a>(&self, endpoints: &'a [Arc<EndpointState>]) -> Option<&'a Arc<EndpointState>> {
        match endpoints.len() {
            0 => None,
            1 => endpoints.first(),
            n => {
                let a = fastrand::usize(..n);
                let mut b = fastrand::usize(..n - 1);
                if b >= a {
                    b += 1;
                }
                let (ea, eb) = (&endpoints[a], &endpoints[b]);
                Some(if eb.outstanding() < ea.outstanding() {
                    eb
                } else {
                    ea
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(port: u16) -> Arc<EndpointState> {
        let ep = Endpoint {
            addr: ([127, 0, 0, 1], port).into(),
            node_proxy: None,
            protocol: Default::default(),
            weight: 1,
            labels: Default::default(),
        };
        let m = weft_metrics::Metrics::new("t");
        let route = m
            .http
            .route(weft_metrics::Direction::Outbound, "s", &ep.addr.to_string());
        Arc::new(EndpointState::new(ep, route))
    }

    #[test]
    fn the_less_loaded_of_two_wins() {
        let eps = vec![state(1), state(2)];
        let _busy: Vec<_> = (0..5).map(|_| eps[0].start()).collect();
        for _ in 0..100 {
            assert_eq!(PowerOfTwo.pick(&eps).unwrap().endpoint.addr.port(), 2);
        }
    }

    #[test]
    fn load_is_released_when_the_guard_drops() {
        let e = state(1);
        drop(e.start());
        assert_eq!(e.outstanding(), 0);
    }
}
