//! The retry budget: retries may add a fraction of the requests sent, plus a floor per
//! second, counted over a sliding window, so retries help through blips but cannot turn an
//! outage into a retry storm.

use std::sync::Mutex;
use std::time::Instant;

use weft_core::policy::RetryPolicy;

/// One-second slots, at most this many (the longest allowed window).
const SLOTS: usize = 60;

pub(crate) struct RetryBudget {
    epoch: Instant,
    slots: Mutex<[(u64, u32, u32); SLOTS]>,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            slots: Mutex::new([(u64::MAX, 0, 0); SLOTS]),
        }
    }
}

impl RetryBudget {
    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    fn slot(slots: &mut [(u64, u32, u32); SLOTS], sec: u64) -> &mut (u64, u32, u32) {
        let s = &mut slots[(sec % SLOTS as u64) as usize];
        if s.0 != sec {
            *s = (sec, 0, 0);
        }
        s
    }

    /// Counts an original request.
    pub(crate) fn deposit(&self, now: Instant) {
        let sec = self.second(now);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        Self::slot(&mut slots, sec).1 += 1;
    }

    /// Takes a retry from the budget if it has one.
    pub(crate) fn try_withdraw(&self, now: Instant, policy: &RetryPolicy) -> bool {
        let sec = self.second(now);
        let ttl = policy.budget_ttl.as_secs().clamp(1, SLOTS as u64);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let (mut requests, mut retries) = (0u64, 0u64);
        for (s, req, ret) in slots.iter() {
            if *s != u64::MAX && *s <= sec && sec - s < ttl {
                requests += *req as u64;
                retries += *ret as u64;
            }
        }
        let allowed = policy.budget_ratio * requests as f64
            + (policy.budget_min_per_second as u64 * ttl) as f64;
        if (retries as f64) < allowed {
            Self::slot(&mut slots, sec).2 += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retries_stay_within_ratio_plus_floor() {
        let b = RetryBudget::default();
        let p = weft_core::policy::Policy::default().retry;
        let t0 = b.epoch;
        for _ in 0..1000 {
            b.deposit(t0);
        }
        let granted = (0..1000).filter(|_| b.try_withdraw(t0, &p)).count();
        // 20 % of 1000 plus 10/s over 10 s.
        assert_eq!(granted, 300);
        // The window moves on: old requests stop counting.
        let later = t0 + Duration::from_secs(11);
        let granted = (0..1000).filter(|_| b.try_withdraw(later, &p)).count();
        assert_eq!(granted, 100);
    }
}
