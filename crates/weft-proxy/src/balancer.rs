//! Picks an endpoint for a request: power of two choices over peak-EWMA latency times load,
//! weighted by each endpoint's configured weight, among endpoints failure accrual admits.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use weft_core::headers::ENDPOINT_PARAM;
use weft_core::policy::BalancerPolicy;
use weft_core::{Endpoint, ServiceName};
use weft_http::client::H1Pool;
use weft_metrics::RouteMetrics;

use crate::resilience::accrual::FailureAccrual;
use crate::resilience::ewma::PeakEwma;

/// One endpoint as the data plane tracks it; survives endpoint-set updates that keep it.
/// The label that names an endpoint's node (the control plane sets it; a discovery file may).
pub(crate) const NODE_LABEL: &str = "node";

pub(crate) struct EndpointState {
    pub endpoint: Endpoint,
    /// `ip:port`, the `endpoint` metric label.
    pub label: String,
    /// The `weft-dst-service` value that sends a request to this endpoint through its node's
    /// proxy; made once, since every request to a peer carries it.
    pub route: HeaderValue,
    /// The node of the instance's proxy (its `node` label), which that proxy's identity
    /// must name.
    pub node: Option<String>,
    pub metrics: RouteMetrics,
    pub ewma: PeakEwma,
    pub accrual: FailureAccrual,
    /// The pool that reaches this endpoint in TLS (a host outside the mesh its callers
    /// address in plain HTTP); `None`: the instances' pool, as it is.
    pub origin: Option<Arc<H1Pool>>,
    /// A host outside the mesh (egress): it is told none of the mesh's context.
    pub outside: bool,
    outstanding: AtomicUsize,
}

impl EndpointState {
    /// `label` is the endpoint's address as text, which the caller has already made for the
    /// endpoint's metrics.
    pub(crate) fn new(
        service: &ServiceName,
        endpoint: Endpoint,
        label: String,
        metrics: RouteMetrics,
        default_rtt: Duration,
    ) -> Self {
        let route = format!("{service};{ENDPOINT_PARAM}={label}");
        Self {
            // A service name is a DNS name and the label an address: both header-safe.
            route: HeaderValue::from_str(&route).unwrap_or(HeaderValue::from_static("invalid")),
            node: endpoint.labels.get(NODE_LABEL).cloned(),
            label,
            endpoint,
            metrics,
            ewma: PeakEwma::new(default_rtt),
            accrual: FailureAccrual::default(),
            origin: None,
            outside: false,
            outstanding: AtomicUsize::new(0),
        }
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Counts a request as outstanding until the guard drops (at the end of its response).
    pub(crate) fn start(self: &Arc<Self>) -> LoadGuard {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        LoadGuard(Arc::clone(self))
    }

    /// Expected cost of one more request here: latency estimate × (load + 1) / weight.
    pub(crate) fn cost(&self, now: Instant, policy: &BalancerPolicy) -> f64 {
        let rtt = self.ewma.estimate(now, policy.decay);
        rtt * (self.outstanding() + 1) as f64 / self.endpoint.weight.max(1) as f64
    }
}

pub(crate) struct LoadGuard(Arc<EndpointState>);

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) enum Pick<'a> {
    Endpoint(&'a Arc<EndpointState>),
    /// The service has endpoints, but failure accrual has ejected every one.
    AllEjected,
    /// The service has no endpoints.
    Empty,
}

pub(crate) trait Balance: Send + Sync {
    /// Picks an endpoint, preferring ones not in `avoid` (those a retry already tried).
    /// `now` is the caller's clock reading, which it reuses as the attempt's start.
    fn pick<'a>(
        &self,
        endpoints: &'a [Arc<EndpointState>],
        avoid: &[SocketAddr],
        policy: &BalancerPolicy,
        now: Instant,
    ) -> Pick<'a>;
}

/// Two endpoints drawn at random by weight; the cheaper one wins.
#[derive(Default)]
pub(crate) struct PeakEwmaP2c;

impl Balance for PeakEwmaP2c {
    fn pick<'a>(
        &self,
        endpoints: &'a [Arc<EndpointState>],
        avoid: &[SocketAddr],
        policy: &BalancerPolicy,
        now: Instant,
    ) -> Pick<'a> {
        if endpoints.is_empty() {
            return Pick::Empty;
        }
        let fresh =
            |e: &Arc<EndpointState>| e.accrual.eligible(now) && !avoid.contains(&e.endpoint.addr);
        let admitted = |e: &Arc<EndpointState>| e.accrual.eligible(now);
        // Prefer endpoints a retry has not tried; retrying where it failed beats not at all.
        let a = draw(endpoints, &fresh, None)
            .map(|a| (a, draw(endpoints, &fresh, Some(a))))
            .or_else(|| {
                draw(endpoints, &admitted, None).map(|a| (a, draw(endpoints, &admitted, Some(a))))
            });
        let chosen = match a {
            None => return Pick::AllEjected,
            Some((a, None)) => &endpoints[a],
            Some((a, Some(b))) => {
                let (ea, eb) = (&endpoints[a], &endpoints[b]);
                if eb.cost(now, policy) < ea.cost(now, policy) {
                    eb
                } else {
                    ea
                }
            }
        };
        chosen.accrual.picked(now);
        Pick::Endpoint(chosen)
    }
}

/// An index among those `ok` admits, drawn with probability proportional to weight, never
/// `except`. Two passes over the slice instead of collecting: no allocation per request.
fn draw(
    endpoints: &[Arc<EndpointState>],
    ok: &dyn Fn(&Arc<EndpointState>) -> bool,
    except: Option<usize>,
) -> Option<usize> {
    let weight = |i: usize, e: &Arc<EndpointState>| -> u64 {
        if Some(i) == except || !ok(e) {
            0
        } else {
            e.endpoint.weight.max(1) as u64
        }
    };
    let total: u64 = endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| weight(i, e))
        .sum();
    if total == 0 {
        return None;
    }
    let mut r = fastrand::u64(..total);
    let mut last = None;
    for (i, e) in endpoints.iter().enumerate() {
        let w = weight(i, e);
        if r < w {
            return Some(i);
        }
        r = r.saturating_sub(w);
        if w > 0 {
            last = Some(i);
        }
    }
    // Accrual state may change between the two passes; any admitted endpoint will do.
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(port: u16, weight: u32) -> Arc<EndpointState> {
        let ep = Endpoint {
            addr: ([127, 0, 0, 1], port).into(),
            node_proxy: None,
            protocol: Default::default(),
            weight,
            labels: Default::default(),
        };
        let m = weft_metrics::Metrics::new("t");
        let label = ep.addr.to_string();
        let route = m.http.route(weft_metrics::Direction::Outbound, "s", &label);
        let service = ServiceName::new("s");
        Arc::new(EndpointState::new(
            &service,
            ep,
            label,
            route,
            Duration::from_millis(30),
        ))
    }

    fn policy() -> BalancerPolicy {
        weft_core::policy::Policy::default().balancer
    }

    fn port(p: Pick<'_>) -> u16 {
        match p {
            Pick::Endpoint(e) => e.endpoint.addr.port(),
            _ => 0,
        }
    }

    #[test]
    fn the_slow_endpoint_loses() {
        let eps = vec![state(1, 1), state(2, 1)];
        let now = Instant::now();
        eps[0]
            .ewma
            .observe(Duration::from_millis(80), now, policy().decay);
        eps[1]
            .ewma
            .observe(Duration::from_millis(2), now, policy().decay);
        eps[1].ewma.observe(
            Duration::from_millis(2),
            now + Duration::from_secs(60),
            policy().decay,
        );
        for _ in 0..100 {
            assert_eq!(
                port(PeakEwmaP2c.pick(&eps, &[], &policy(), Instant::now())),
                2
            );
        }
    }

    #[test]
    fn weights_shape_the_share() {
        let eps = vec![state(1, 1), state(2, 1), state(3, 8)];
        let heavy = (0..3000)
            .filter(|_| port(PeakEwmaP2c.pick(&eps, &[], &policy(), Instant::now())) == 3)
            .count();
        assert!(heavy > 1500, "weight 8 of 10 got {heavy} of 3000");
    }

    #[test]
    fn a_retry_avoids_the_endpoint_that_failed() {
        let eps = vec![state(1, 1), state(2, 1)];
        let avoid = [eps[0].endpoint.addr];
        for _ in 0..50 {
            assert_eq!(
                port(PeakEwmaP2c.pick(&eps, &avoid, &policy(), Instant::now())),
                2
            );
        }
    }

    #[test]
    fn load_is_released_when_the_guard_drops() {
        let e = state(1, 1);
        drop(e.start());
        assert_eq!(e.outstanding(), 0);
    }
}
