//! One subscriber as the request path sees it: its filter, the rate it may be sent
//! requests at, and a bounded buffer that never makes a request wait.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use weft_core::tap::TapFilter;

use super::Taps;

/// Requests held for a filter that needs their answer, at most this many times as many
/// as its rate admits: the cost of looking ahead stays bounded too.
const LOOKAHEAD: f64 = 10.0;

pub(crate) struct Subscriber {
    pub(super) id: u64,
    pub(super) filter: TapFilter,
    /// The subscriber's rate, spent a whole request at a time when its filter takes one.
    bucket: Mutex<Bucket>,
    /// Requests held until their answer says whether the filter takes them.
    lookahead: Mutex<Bucket>,
    tx: mpsc::Sender<Bytes>,
    /// Says why the subscriber was dropped, once.
    pub(super) close: Mutex<Option<oneshot::Sender<String>>>,
    /// Dropped: requests in flight send it nothing more.
    pub(super) gone: AtomicBool,
}

impl Subscriber {
    pub(super) fn new(
        id: u64,
        filter: TapFilter,
        tx: mpsc::Sender<Bytes>,
        close: oneshot::Sender<String>,
        now: Instant,
    ) -> Self {
        let rate = f64::from(filter.rate);
        let per_request = f64::from(filter.events_per_request());
        Self {
            id,
            bucket: Mutex::new(Bucket::new(rate, per_request, now)),
            lookahead: Mutex::new(Bucket::new(rate * LOOKAHEAD, per_request, now)),
            filter,
            tx,
            close: Mutex::new(Some(close)),
            gone: AtomicBool::new(false),
        }
    }

    /// Whether the rate allows a whole request's events now.
    pub(super) fn take(&self, now: Instant) -> bool {
        let n = f64::from(self.filter.events_per_request());
        lock(&self.bucket).take(now, n)
    }

    /// Whether a request may be held for its answer now.
    pub(super) fn look_ahead(&self, now: Instant) -> bool {
        let n = f64::from(self.filter.events_per_request());
        lock(&self.lookahead).take(now, n)
    }

    /// Sends a line, never waiting: a full buffer drops the subscriber.
    pub(super) fn send(&self, taps: &Taps, line: &Bytes) {
        if self.gone.load(Ordering::Relaxed) {
            return;
        }
        match self.tx.try_send(line.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => taps.unsubscribe(
                self.id,
                Some(format!(
                    "the subscriber read too slowly: {} events were waiting (tap.buffer)",
                    self.tx.max_capacity()
                )),
            ),
            Err(mpsc::error::TrySendError::Closed(_)) => taps.unsubscribe(self.id, None),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Events per second, with a second's worth of burst (never less than one request's).
struct Bucket {
    tokens: f64,
    rate: f64,
    most: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: f64, per_request: f64, now: Instant) -> Self {
        let most = rate.max(per_request);
        Self {
            tokens: most,
            rate,
            most,
            last: now,
        }
    }

    fn take(&mut self, now: Instant, n: f64) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.most);
        self.last = self.last.max(now);
        if self.tokens >= n {
            self.tokens -= n;
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
    fn the_bucket_admits_whole_requests_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(30.0, 3.0, t0);
        let first: usize = (0..100).filter(|_| b.take(t0, 3.0)).count();
        assert_eq!(first, 10, "a second's burst");
        let later = t0 + Duration::from_millis(500);
        let more: usize = (0..100).filter(|_| b.take(later, 3.0)).count();
        assert_eq!(more, 5, "half a second's refill");
        // A rate below one request's events still lets one through a second.
        let mut slow = Bucket::new(1.0, 3.0, t0);
        assert!(slow.take(t0, 3.0));
        assert!(!slow.take(t0 + Duration::from_secs(1), 3.0));
        assert!(slow.take(t0 + Duration::from_secs(3), 3.0));
    }

    #[test]
    fn ends_only_is_three_times_the_requests_for_the_rate() {
        let t0 = Instant::now();
        let (tx, _rx) = mpsc::channel(4);
        let all = TapFilter::parse("rate=30").unwrap();
        let ends = TapFilter::parse("rate=30&events=end").unwrap();
        let count = |f: TapFilter| {
            let s = Subscriber::new(1, f, tx.clone(), oneshot::channel().0, t0);
            (0..100).filter(|_| s.take(t0)).count()
        };
        assert_eq!((count(all), count(ends)), (10, 30));
    }
}
