//! Requests in flight per listener, bounded: past the limit a request is turned away at
//! once with `503` and `weft-error: overloaded`, before any work is done for it, so a flood
//! costs a counter, not memory.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::ProxyError;

pub(crate) struct InFlight {
    count: AtomicUsize,
    limit: usize,
}

/// A request's place, given back when it is dropped (its answer's head is on its way).
pub(crate) struct Admitted<'a>(&'a AtomicUsize);

impl InFlight {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            count: AtomicUsize::new(0),
            limit,
        }
    }

    pub(crate) fn admit(&self) -> Result<Admitted<'_>, ProxyError> {
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.limit {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(ProxyError::Overloaded { limit: self.limit });
        }
        Ok(Admitted(&self.count))
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_limit_a_request_is_turned_away_until_one_ends() {
        let f = InFlight::new(2);
        let a = f.admit().unwrap();
        let _b = f.admit().unwrap();
        assert!(matches!(
            f.admit(),
            Err(ProxyError::Overloaded { limit: 2 })
        ));
        drop(a);
        assert!(f.admit().is_ok());
    }
}
