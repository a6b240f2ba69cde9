//! Peak-EWMA latency: an endpoint's cost jumps to a slow response at once and decays back
//! with time, so the balancer routes around slowness quickly and returns cautiously.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct PeakEwma {
    /// (estimate in seconds, when it was last updated)
    state: Mutex<(f64, Instant)>,
}

impl PeakEwma {
    pub(crate) fn new(default_rtt: Duration) -> Self {
        Self {
            state: Mutex::new((default_rtt.as_secs_f64(), Instant::now())),
        }
    }

    /// The estimate now: decayed toward zero since the last observation, so an endpoint
    /// that got no traffic because it was slow is tried again in time.
    pub(crate) fn estimate(&self, now: Instant, decay: Duration) -> f64 {
        let (est, at) = *self.state.lock().unwrap_or_else(|e| e.into_inner());
        est * weight(now.saturating_duration_since(at), decay)
    }

    pub(crate) fn observe(&self, rtt: Duration, now: Instant, decay: Duration) {
        let rtt = rtt.as_secs_f64();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (est, at) = *s;
        let next = if rtt > est {
            rtt
        } else {
            let w = weight(now.saturating_duration_since(at), decay);
            est * w + rtt * (1.0 - w)
        };
        *s = (next, now);
    }
}

fn weight(elapsed: Duration, decay: Duration) -> f64 {
    (-elapsed.as_secs_f64() / decay.as_secs_f64().max(1e-3)).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_at_once_and_decays_slowly() {
        let t0 = Instant::now();
        let decay = Duration::from_secs(10);
        let e = PeakEwma::new(Duration::from_millis(30));
        e.observe(Duration::from_millis(200), t0, decay);
        assert!((e.estimate(t0, decay) - 0.2).abs() < 1e-9);
        e.observe(
            Duration::from_millis(1),
            t0 + Duration::from_millis(100),
            decay,
        );
        let est = e.estimate(t0 + Duration::from_millis(100), decay);
        assert!(est > 0.19, "one fast answer barely moves it: {est}");
        assert!(e.estimate(t0 + Duration::from_secs(60), decay) < 0.01);
    }
}
