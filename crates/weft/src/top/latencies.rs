//! One row's latencies: a bounded uniform sample (reservoir sampling) from which the
//! percentiles are exact over what was kept, and the best and worst of all seen.

/// Samples kept per row: exact percentiles up to this many requests, a uniform sample of
/// them beyond (40 KiB a row at most).
pub const MAX_SAMPLES: usize = 10_000;

#[derive(Debug, Clone, Default)]
pub struct Latencies {
    /// Microseconds; sorted when `sorted` says so.
    samples: Vec<u32>,
    sorted: bool,
    seen: u64,
    best: u32,
    worst: u32,
}

impl Latencies {
    /// Adds one latency; past `MAX_SAMPLES`, each new one replaces a kept one with the
    /// chance that keeps the sample uniform over all seen (Vitter's algorithm R).
    pub fn record(&mut self, us: u64, rng: &mut fastrand::Rng) {
        // 71 minutes in µs: a longer latency is shown as that.
        let us = u32::try_from(us).unwrap_or(u32::MAX);
        self.seen += 1;
        if self.seen == 1 {
            (self.best, self.worst) = (us, us);
        } else {
            self.best = self.best.min(us);
            self.worst = self.worst.max(us);
        }
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(us);
            self.sorted = false;
        } else {
            let j = rng.u64(0..self.seen);
            if let Ok(j) = usize::try_from(j) {
                if j < MAX_SAMPLES {
                    // The slot is picked at random, so the sample stays uniform whatever
                    // order it is kept in: it may stay sorted between reads.
                    self.samples[j] = us;
                    self.sorted = false;
                }
            }
        }
    }

    /// The `p`th percentile (0 < p ≤ 100) by nearest rank: the smallest kept latency
    /// that at least p % of the kept ones do not exceed.
    pub fn percentile(&mut self, p: u32) -> Option<u64> {
        if self.samples.is_empty() {
            return None;
        }
        if !self.sorted {
            self.samples.sort_unstable();
            self.sorted = true;
        }
        let n = self.samples.len() as u64;
        let rank = (u64::from(p.clamp(1, 100)) * n).div_ceil(100);
        let i = usize::try_from(rank.saturating_sub(1)).unwrap_or(0);
        self.samples.get(i).map(|&us| u64::from(us))
    }

    pub fn best(&self) -> Option<u64> {
        (self.seen > 0).then_some(u64::from(self.best))
    }

    pub fn worst(&self) -> Option<u64> {
        (self.seen > 0).then_some(u64::from(self.worst))
    }

    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.samples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: impl IntoIterator<Item = u64>) -> Latencies {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut l = Latencies::default();
        for v in values {
            l.record(v, &mut rng);
        }
        l
    }

    #[test]
    fn percentiles_are_exact_by_nearest_rank() {
        let mut l = of((1..=100).rev());
        assert_eq!(l.percentile(50), Some(50));
        assert_eq!(l.percentile(99), Some(99));
        assert_eq!(l.percentile(100), Some(100));
        assert_eq!((l.best(), l.worst()), (Some(1), Some(100)));

        let mut l = of([300, 100, 200]);
        assert_eq!(l.percentile(50), Some(200));
        assert_eq!(l.percentile(99), Some(300));

        let mut one = of([42]);
        assert_eq!(
            (one.percentile(50), one.percentile(99)),
            (Some(42), Some(42))
        );
        assert_eq!(Latencies::default().percentile(50), None);
        assert_eq!(Latencies::default().best(), None);
    }

    #[test]
    fn the_sample_stays_bounded_and_uniform_but_best_and_worst_see_everything() {
        // 1..=100 000 µs: a uniform sample's median sits near 50 000.
        let mut l = of((1..=100_000).map(|i| (i * 7919) % 100_000 + 1));
        assert_eq!(l.kept(), MAX_SAMPLES);
        assert_eq!((l.best(), l.worst()), (Some(1), Some(100_000)));
        let p50 = l.percentile(50).unwrap();
        assert!((45_000..55_000).contains(&p50), "p50 {p50}");
        let p99 = l.percentile(99).unwrap();
        assert!((97_000..=100_000).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn a_latency_past_what_is_kept_shows_as_the_most_kept() {
        let l = of([u64::MAX]);
        assert_eq!(l.worst(), Some(u64::from(u32::MAX)));
    }
}
