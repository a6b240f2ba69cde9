//! Deadlines travel with a request (`weft-ctx-deadline`, Unix time in microseconds) and
//! bind every hop: a proxy never waits past the tightest of its own timeout and the
//! caller's deadline, and refuses at once a request whose deadline has passed.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use weft_core::headers::WEFT_CTX_DEADLINE;

/// The longest any deadline may reach into the future.
const MAX_WAIT: Duration = weft_core::policy::MAX_DURATION;

/// When a request must be answered by, and whether the caller (not our timeout) set it.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub from_caller: bool,
    wall: SystemTime,
}

impl Deadline {
    /// The tighter of the caller's deadline (if any) and `now + timeout` (if non-zero).
    pub fn effective(headers: &HeaderMap, timeout: Duration, now: Instant) -> Option<Self> {
        let wall_now = SystemTime::now();
        // Whatever a caller or a config says, nothing waits longer than this (and no
        // arithmetic on clocks can overflow).
        let within = |d: Duration| d.min(MAX_WAIT);
        let ours = (!timeout.is_zero()).then(|| Self {
            at: now + within(timeout),
            from_caller: false,
            wall: wall_now + within(timeout),
        });
        let theirs = incoming(headers).map(|wall| {
            let left = within(wall.duration_since(wall_now).unwrap_or(Duration::ZERO));
            Self {
                at: now + left,
                from_caller: true,
                wall: wall_now + left,
            }
        });
        match (ours, theirs) {
            (Some(a), Some(b)) => Some(if b.at <= a.at { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    pub fn expired(&self, now: Instant) -> bool {
        now >= self.at
    }

    /// Puts this deadline on a request to the next hop.
    pub fn propagate(&self, headers: &mut HeaderMap) {
        let micros = self
            .wall
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros();
        let micros = u64::try_from(micros).unwrap_or(u64::MAX);
        // `HeaderValue::from(u64)` grows a buffer from empty; digits on the stack are one
        // exact allocation.
        let mut digits = itoa::Buffer::new();
        let Ok(mut value) = HeaderValue::from_str(digits.format(micros)) else {
            return;
        };
        // Unique to each request: indexing it in HPACK's dynamic table would insert and
        // evict an entry per request, and lengthen the chain every later lookup walks.
        value.set_sensitive(true);
        headers.insert(WEFT_CTX_DEADLINE, value);
    }
}

fn incoming(headers: &HeaderMap) -> Option<SystemTime> {
    let micros: u64 = headers
        .get(WEFT_CTX_DEADLINE)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    UNIX_EPOCH.checked_add(Duration::from_micros(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tighter_deadline_wins_and_round_trips() {
        let now = Instant::now();
        let mut h = HeaderMap::new();
        let d = Deadline::effective(&h, Duration::from_millis(100), now).unwrap();
        assert!(!d.from_caller);
        d.propagate(&mut h);
        let back = Deadline::effective(&h, Duration::from_secs(10), now).unwrap();
        assert!(back.from_caller);
        let diff =
            back.at.saturating_duration_since(d.at) + d.at.saturating_duration_since(back.at);
        assert!(diff < Duration::from_millis(5), "{diff:?}");
        let tighter = Deadline::effective(&h, Duration::from_millis(10), now).unwrap();
        assert!(!tighter.from_caller);
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
