//! Failure accrual: an endpoint that fails N times in a row, or whose success rate over a
//! window falls too low, gets no traffic but one probe after a jittered, growing backoff.
//! A good probe readmits it; a bad one doubles the wait.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use weft_core::policy::AccrualPolicy;

/// A probe that has not answered in this long counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most outcomes kept for the success-rate window.
const WINDOW_CAP: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed,
    Open { until: Instant, backoff: Duration },
    Probing { since: Instant, backoff: Duration },
}

pub(crate) struct FailureAccrual {
    /// True while the circuit is closed: the balancer's check on every request reads this
    /// instead of taking the lock.
    closed: AtomicBool,
    inner: Mutex<Inner>,
}

struct Inner {
    state: State,
    consecutive: u32,
    outcomes: VecDeque<(Instant, bool)>,
}

/// What the admin API shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shown {
    Ready,
    Open,
    Probing,
}

impl Default for FailureAccrual {
    fn default() -> Self {
        Self {
            closed: AtomicBool::new(true),
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive: 0,
                outcomes: VecDeque::new(),
            }),
        }
    }
}

impl FailureAccrual {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the balancer may send here now (a due probe counts).
    pub(crate) fn eligible(&self, now: Instant) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return true;
        }
        match self.lock().state {
            State::Closed => true,
            State::Open { until, .. } => now >= until,
            State::Probing { since, .. } => now.saturating_duration_since(since) > PROBE_TIMEOUT,
        }
    }

    /// Called when the balancer picks this endpoint: a due probe is claimed by this request.
    pub(crate) fn picked(&self, now: Instant) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut s = self.lock();
        match s.state {
            State::Open { until, backoff } if now >= until => {
                s.state = State::Probing {
                    since: now,
                    backoff,
                };
            }
            State::Probing { since, backoff }
                if now.saturating_duration_since(since) > PROBE_TIMEOUT =>
            {
                s.state = State::Probing {
                    since: now,
                    backoff: grow(backoff, None),
                };
            }
            _ => {}
        }
    }

    pub(crate) fn record(&self, success: bool, now: Instant, policy: &AccrualPolicy) {
        let mut s = self.lock();
        self.transition(&mut s, success, now, policy);
        self.closed
            .store(s.state == State::Closed, Ordering::Release);
    }

    fn transition(&self, s: &mut Inner, success: bool, now: Instant, policy: &AccrualPolicy) {
        match s.state {
            State::Probing { backoff, .. } => {
                if success {
                    s.state = State::Closed;
                    s.consecutive = 0;
                    s.outcomes.clear();
                } else {
                    let backoff = grow(backoff, Some(policy));
                    s.state = State::Open {
                        until: now + jitter(backoff),
                        backoff,
                    };
                }
            }
            // Answers to requests sent before the circuit opened change nothing.
            State::Open { .. } => {}
            State::Closed => {
                s.consecutive = if success { 0 } else { s.consecutive + 1 };
                s.outcomes.push_back((now, success));
                while s.outcomes.len() > WINDOW_CAP
                    || s.outcomes
                        .front()
                        .is_some_and(|(t, _)| now.saturating_duration_since(*t) > policy.window)
                {
                    s.outcomes.pop_front();
                }
                let too_many =
                    policy.consecutive_failures > 0 && s.consecutive >= policy.consecutive_failures;
                let rate_low = policy.min_success_rate > 0.0
                    && s.outcomes.len() >= policy.min_requests as usize
                    && {
                        let ok = s.outcomes.iter().filter(|(_, ok)| *ok).count();
                        (ok as f64) / (s.outcomes.len() as f64) < policy.min_success_rate
                    };
                if too_many || rate_low {
                    let backoff = policy.backoff_min;
                    s.state = State::Open {
                        until: now + jitter(backoff),
                        backoff,
                    };
                    s.consecutive = 0;
                    s.outcomes.clear();
                    tracing::info!(
                        consecutive = too_many,
                        low_rate = rate_low,
                        "endpoint ejected"
                    );
                }
            }
        }
    }

    pub(crate) fn shown(&self) -> Shown {
        match self.lock().state {
            State::Closed => Shown::Ready,
            State::Open { .. } => Shown::Open,
            State::Probing { .. } => Shown::Probing,
        }
    }
}

fn grow(backoff: Duration, policy: Option<&AccrualPolicy>) -> Duration {
    let max = policy.map_or(Duration::from_secs(60), |p| p.backoff_max);
    (backoff * 2).min(max)
}

/// Somewhere in the upper half of the backoff, so ejected endpoints are not all probed at once.
fn jitter(backoff: Duration) -> Duration {
    backoff.mul_f64(0.5 + fastrand::f64() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AccrualPolicy {
        weft_core::policy::Policy::default().accrual
    }

    #[test]
    fn seven_failures_open_and_a_good_probe_closes() {
        let a = FailureAccrual::default();
        let p = policy();
        let t0 = Instant::now();
        for _ in 0..6 {
            a.record(false, t0, &p);
        }
        assert!(a.eligible(t0));
        a.record(false, t0, &p);
        assert_eq!(a.shown(), Shown::Open);
        assert!(!a.eligible(t0));
        let later = t0 + Duration::from_millis(1001);
        assert!(a.eligible(later));
        a.picked(later);
        assert_eq!(a.shown(), Shown::Probing);
        assert!(!a.eligible(later), "one probe at a time");
        a.record(true, later, &p);
        assert_eq!(a.shown(), Shown::Ready);
    }

    #[test]
    fn a_failed_probe_doubles_the_backoff() {
        let a = FailureAccrual::default();
        let p = policy();
        let t0 = Instant::now();
        for _ in 0..7 {
            a.record(false, t0, &p);
        }
        let t1 = t0 + Duration::from_secs(1);
        a.picked(t1);
        a.record(false, t1, &p);
        assert!(
            !a.eligible(t1 + Duration::from_millis(999)),
            "waits at least 1 s (half of 2 s)"
        );
        assert!(a.eligible(t1 + Duration::from_secs(2)));
    }

    #[test]
    fn a_low_success_rate_opens() {
        let a = FailureAccrual::default();
        let mut p = policy();
        p.min_success_rate = 0.8;
        p.consecutive_failures = 0;
        let t0 = Instant::now();
        for i in 0..20 {
            a.record(i % 2 == 0, t0, &p);
        }
        assert_eq!(a.shown(), Shown::Open);
    }
}
