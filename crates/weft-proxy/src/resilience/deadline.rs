//! Deadlines travel with a request and bind every hop: a proxy never waits past the
//! tightest of its own timeout and the caller's deadline, and refuses at once a request
//! whose deadline has passed.
//!
//! Apps see and send `weft-ctx-deadline` (Unix time in microseconds), which they can copy
//! onto the calls a request makes. Between proxies the deadline travels as the time left
//! (`weft-ctx-timeout`, milliseconds): the nodes' clocks need not agree, and while the
//! proxy's own timeout sets it the value repeats, which HPACK sends as one byte instead of
//! Huffman-coding a fresh timestamp at one end and decoding it at the other.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use weft_core::context::time_left;
use weft_core::headers::{WEFT_CTX_DEADLINE, WEFT_CTX_TIMEOUT};

/// The longest any deadline may reach into the future.
const MAX_WAIT: Duration = weft_core::policy::MAX_DURATION;

/// When a request must be answered by, and whether the caller (not our timeout) set it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub at: Instant,
    pub from_caller: bool,
}

impl Deadline {
    /// The tighter of the caller's deadline (if any) and `now + timeout` (if non-zero).
    pub(crate) fn effective(headers: &HeaderMap, timeout: Duration, now: Instant) -> Option<Self> {
        // Whatever a caller or a config says, nothing waits longer than this (and no
        // arithmetic on clocks can overflow).
        let ours = (!timeout.is_zero()).then(|| Self {
            at: now + timeout.min(MAX_WAIT),
            from_caller: false,
        });
        let theirs = time_left(headers, SystemTime::now()).map(|left| Self {
            at: now + left.min(MAX_WAIT),
            from_caller: true,
        });
        match (ours, theirs) {
            (Some(a), Some(b)) => Some(if b.at <= a.at { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn expired(&self, now: Instant) -> bool {
        now >= self.at
    }

    /// Puts this deadline on a request to a peer proxy, as of `now`.
    pub(crate) fn to_peer(self, headers: &mut HeaderMap, now: Instant) {
        // Rounded down: the far side gives up no later than this one.
        let left = self.at.saturating_duration_since(now).as_millis();
        // A caller's deadline leaves a different time each request; ours repeats.
        insert_number(headers, WEFT_CTX_TIMEOUT, left, self.from_caller);
    }

    /// Puts this deadline on a request to an instance, as of `now`.
    pub(crate) fn to_instance(self, headers: &mut HeaderMap, now: Instant) {
        let wall = SystemTime::now() + self.at.saturating_duration_since(now);
        let micros = wall
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros();
        insert_number(headers, WEFT_CTX_DEADLINE, micros, true);
    }
}

/// `unique`: the value is unlikely to repeat, so HPACK must not index it (that would insert
/// and evict a table entry per request, and lengthen the chain every later lookup walks).
fn insert_number(headers: &mut HeaderMap, name: HeaderName, n: u128, unique: bool) {
    let n = u64::try_from(n).unwrap_or(u64::MAX);
    // `HeaderValue::from(u64)` grows a buffer from empty; digits on the stack are one exact
    // allocation.
    let mut digits = itoa::Buffer::new();
    let Ok(mut value) = HeaderValue::from_str(digits.format(n)) else {
        return;
    };
    value.set_sensitive(unique);
    headers.insert(name, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tighter_deadline_wins_and_round_trips_in_both_forms() {
        let now = Instant::now();
        let d = Deadline::effective(&HeaderMap::new(), Duration::from_millis(100), now).unwrap();
        assert!(!d.from_caller);
        for put in [Deadline::to_peer, Deadline::to_instance] {
            let mut h = HeaderMap::new();
            put(d, &mut h, now);
            let back = Deadline::effective(&h, Duration::from_secs(10), now).unwrap();
            assert!(back.from_caller);
            let diff =
                back.at.saturating_duration_since(d.at) + d.at.saturating_duration_since(back.at);
            assert!(diff < Duration::from_millis(5), "{diff:?}");
            let tighter = Deadline::effective(&h, Duration::from_millis(10), now).unwrap();
            assert!(!tighter.from_caller);
        }
    }

    #[test]
    fn between_proxies_our_timeout_repeats_and_a_callers_deadline_is_never_indexed() {
        let now = Instant::now();
        let ours = Deadline::effective(&HeaderMap::new(), Duration::from_secs(30), now).unwrap();
        let mut h = HeaderMap::new();
        ours.to_peer(&mut h, now + Duration::from_micros(40));
        assert_eq!(h[WEFT_CTX_TIMEOUT], "29999");
        assert!(!h[WEFT_CTX_TIMEOUT].is_sensitive());
        let theirs = Deadline::effective(&h, Duration::ZERO, now).unwrap();
        theirs.to_peer(&mut h, now);
        assert!(h[WEFT_CTX_TIMEOUT].is_sensitive());
    }

    #[test]
    fn given_both_forms_the_tighter_counts() {
        let now = Instant::now();
        let far = Deadline::effective(&HeaderMap::new(), Duration::from_secs(60), now).unwrap();
        let near = Deadline::effective(&HeaderMap::new(), Duration::from_secs(2), now).unwrap();
        for (a, b) in [(far, near), (near, far)] {
            let mut h = HeaderMap::new();
            a.to_peer(&mut h, now);
            b.to_instance(&mut h, now);
            let got = Deadline::effective(&h, Duration::ZERO, now).unwrap();
            assert!(got.at <= now + Duration::from_secs(2), "{a:?} {b:?}");
            assert!(got.at > now + Duration::from_secs(1), "{a:?} {b:?}");
        }
    }

    #[test]
    fn an_absurd_deadline_is_capped_not_a_panic() {
        let mut h = HeaderMap::new();
        h.insert(
            WEFT_CTX_DEADLINE,
            HeaderValue::from_static("18446744073709551615"),
        );
        let now = Instant::now();
        let d = Deadline::effective(&h, Duration::ZERO, now).unwrap();
        assert!(d.at <= now + MAX_WAIT);
        let huge = Deadline::effective(&HeaderMap::new(), Duration::MAX, now).unwrap();
        assert!(huge.at <= now + MAX_WAIT);
    }

    #[test]
    fn a_passed_deadline_is_expired() {
        let mut h = HeaderMap::new();
        h.insert(WEFT_CTX_DEADLINE, HeaderValue::from_static("1000"));
        let now = Instant::now();
        assert!(Deadline::effective(&h, Duration::ZERO, now)
            .unwrap()
            .expired(now));
    }
}
