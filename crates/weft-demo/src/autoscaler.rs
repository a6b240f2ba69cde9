//! `weft demo --autoscale world=10rps`: world's instances follow its load the way a
//! Kubernetes HorizontalPodAutoscaler would set a Deployment's replicas, with no
//! Kubernetes. Every sync period it reads world's requests per second per ready instance
//! from the dashboard's history (what the external metrics API serves an HPA), and:
//! - proposes `ceil(current × metric / target)`, or `current` when the ratio is within the
//!   tolerance (10 %);
//! - scales down only to the highest proposal of the stabilisation window (5 minutes by
//!   default), and up at once, within the default scale-up policies: the most of doubling
//!   and adding 4 instances per 15 s (scale-down's default, all of them per 15 s, is kept
//!   too);
//! - stays within min and max; with no reading it does nothing, never scaling to the
//!   minimum on missing figures.
//!
//! One deliberate difference: the start counts as a proposal of the starting count, so the
//! first figures, taken while the traffic warms up, cannot scale down before a window has
//! passed ([`Hpa::new`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use weft_dashboard::autoscale::{self, Metric};

use crate::fleet::Fleet;

/// The only service the demo scales.
pub const SERVICE: &str = "world";
/// The demo's services are bare names: Kubernetes' default namespace.
const NAMESPACE: &str = "default";
pub const DEFAULT_MIN: usize = 1;
pub const DEFAULT_MAX: usize = 10;
/// The most instances the demo runs of world.
pub const MOST: usize = 100;
/// The HPA controller's sync period (`--horizontal-pod-autoscaler-sync-period`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// The HPA's default scale-down stabilisation window.
pub const DEFAULT_STABILIZATION: Duration = Duration::from_secs(300);
/// The longest stabilisation window Kubernetes allows.
pub const MAX_STABILIZATION: Duration = Duration::from_secs(3600);
/// `--horizontal-pod-autoscaler-tolerance`.
pub const TOLERANCE: f64 = 0.1;

/// `world=10rps,min=1,max=10`: the target per instance and the bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Autoscale {
    /// Requests per second per instance.
    pub target: f64,
    pub min: usize,
    pub max: usize,
}

impl std::str::FromStr for Autoscale {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split(',').map(str::trim);
        let first = parts.next().unwrap_or_default();
        let Some((service, target)) = first.split_once('=') else {
            return Err(format!(
                "{first:?}: want SERVICE=TARGETrps, such as world=10rps"
            ));
        };
        if service.trim() != SERVICE {
            return Err(format!(
                "{service:?}: the demo scales {SERVICE} only (--autoscale {SERVICE}=10rps)"
            ));
        }
        let target = target.trim();
        let number = target.strip_suffix("rps").unwrap_or(target).trim();
        let target: f64 = match number.parse() {
            Ok(t) if f64::is_finite(t) && t > 0.0 => t,
            _ => {
                return Err(format!(
                "{target:?}: the target is requests per second per instance above 0, such as 10rps"
            ))
            }
        };
        let (mut min, mut max) = (DEFAULT_MIN, DEFAULT_MAX);
        for part in parts {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            let value: usize = value
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: want min=N or max=N, N a whole number"))?;
            match key.trim() {
                "min" => min = value,
                "max" => max = value,
                _ => {
                    return Err(format!(
                        "{part:?}: only min=N and max=N may follow the target"
                    ))
                }
            }
        }
        if min < 1 {
            return Err("min must be at least 1".into());
        }
        if max < min || max > MOST {
            return Err(format!("max must be from min ({min}) to {MOST}, not {max}"));
        }
        Ok(Self { target, min, max })
    }
}

/// How fast the count may change, per period (an HPA's `HPAScalingPolicy`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Policy {
    /// Instances added or removed per period.
    Instances(usize, Duration),
    /// A share of the count at the period's start, in percent.
    Percent(u32, Duration),
}

impl Policy {
    fn period(self) -> Duration {
        match self {
            Self::Instances(_, p) | Self::Percent(_, p) => p,
        }
    }
}

/// Scale-up: the most of doubling and adding 4, per 15 s.
pub const SCALE_UP: [Policy; 2] = [
    Policy::Percent(100, Duration::from_secs(15)),
    Policy::Instances(4, Duration::from_secs(15)),
];
/// Scale-down: all of them per 15 s (the window is what holds it back).
pub const SCALE_DOWN: [Policy; 1] = [Policy::Percent(100, Duration::from_secs(15))];

/// The HPA's decision, with time passed in.
pub struct Hpa {
    spec: Autoscale,
    stabilization: Duration,
    /// Proposals within the stabilisation window, oldest first.
    proposals: VecDeque<(Instant, usize)>,
    /// Changes made within the longest policy period: (when, added, removed).
    changes: VecDeque<(Instant, usize, usize)>,
}

impl Hpa {
    /// An autoscaler that has `start` instances at `now`; the start is its first proposal.
    pub fn new(spec: Autoscale, stabilization: Duration, now: Instant, start: usize) -> Self {
        Self {
            spec,
            stabilization,
            proposals: VecDeque::from([(now, start)]),
            changes: VecDeque::new(),
        }
    }

    /// The count to have, given `current` instances and a `metric` per instance.
    pub fn desired(&mut self, now: Instant, current: usize, metric: f64) -> usize {
        let ratio = metric / self.spec.target;
        let proposal = if (ratio - 1.0).abs() <= TOLERANCE {
            current
        } else {
            (current as f64 * ratio).ceil() as usize
        };
        // Down only as far as the highest proposal in the window, this one included; up at
        // once (the default scale-up window is 0).
        while self
            .proposals
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > self.stabilization)
        {
            self.proposals.pop_front();
        }
        let highest = self
            .proposals
            .iter()
            .map(|(_, n)| *n)
            .fold(proposal, usize::max);
        self.proposals.push_back((now, proposal));
        let stable = current.max(proposal).min(highest);
        self.limited(now, current, stable)
    }

    /// Notes a change made, for the policies' periods.
    pub fn scaled(&mut self, now: Instant, from: usize, to: usize) {
        self.changes
            .push_back((now, to.saturating_sub(from), from.saturating_sub(to)));
    }

    /// `desired` within the policies' rates and min and max.
    fn limited(&mut self, now: Instant, current: usize, desired: usize) -> usize {
        let longest = SCALE_UP.iter().chain(&SCALE_DOWN).map(|p| p.period()).max();
        while self
            .changes
            .front()
            .is_some_and(|(t, ..)| longest.is_none_or(|l| now.saturating_duration_since(*t) > l))
        {
            self.changes.pop_front();
        }
        // The count at the start of each policy's period, and its limit: the most of them
        // going up, the least going down.
        let at_start = |period: Duration| {
            let (added, removed) = self
                .changes
                .iter()
                .filter(|(t, ..)| now.saturating_duration_since(*t) <= period)
                .fold((0, 0), |(a, r), (_, add, rem)| (a + add, r + rem));
            (current + removed).saturating_sub(added)
        };
        let (min, max) = (self.spec.min, self.spec.max);
        if desired > current {
            let limit = SCALE_UP
                .iter()
                .map(|p| match *p {
                    Policy::Instances(n, d) => at_start(d) + n,
                    Policy::Percent(pc, d) => {
                        (at_start(d) as f64 * (1.0 + f64::from(pc) / 100.0)).ceil() as usize
                    }
                })
                .max()
                .unwrap_or(desired)
                .max(current);
            desired.min(limit).min(max).max(min)
        } else if desired < current {
            let limit = SCALE_DOWN
                .iter()
                .map(|p| match *p {
                    Policy::Instances(n, d) => at_start(d).saturating_sub(n),
                    Policy::Percent(pc, d) => {
                        (at_start(d) as f64 * (1.0 - f64::from(pc) / 100.0)).max(0.0) as usize
                    }
                })
                .min()
                .unwrap_or(desired)
                .min(current);
            desired.max(limit).max(min).min(max)
        } else {
            desired.clamp(min, max)
        }
    }
}

/// The window world's rate is read over: two sync periods, from 15 s (enough rounds to
/// be steady) to 30 s (short enough to follow a step within a decision or two), and at
/// least two of the dashboard's rounds.
pub fn window(interval: Duration, scrape: Duration) -> Duration {
    (interval * 2)
        .clamp(Duration::from_secs(15), Duration::from_secs(30))
        .max(scrape * 2)
}

/// Runs the autoscaler until `stop` turns true, printing each change.
pub(crate) async fn run(
    mut hpa: Hpa,
    interval: Duration,
    window: Duration,
    dashboard: Arc<weft_dashboard::Shared>,
    mut fleet: Fleet,
    mut stop: watch::Receiver<bool>,
) {
    let target = hpa.spec.target;
    let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let current = fleet.count();
        let (reading, seen) = {
            let h = dashboard.history.read().unwrap_or_else(|e| e.into_inner());
            let metric = Metric::RequestsPerSecondPerInstance;
            let reading = autoscale::read(&h, NAMESPACE, SERVICE, metric, window);
            (reading, h.instances(SERVICE))
        };
        let reading = match reading {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(reason = %e, "autoscaler: no reading; nothing changes");
                continue;
            }
        };
        // Figures divided by another count than the one running are of a scale that is
        // not the present one (the proxies or the dashboard have yet to see the last
        // change): wait for the next, as the HPA sets aside pods not yet ready.
        if seen != Some(current as f64) {
            tracing::debug!(
                ?seen,
                current,
                "autoscaler: the figures lag the last change"
            );
            continue;
        }
        let now = Instant::now();
        let desired = hpa.desired(now, current, reading.value);
        if desired == current {
            continue;
        }
        let done = if desired > current {
            current + fleet.grow(desired - current).await
        } else {
            current - fleet.shrink(current - desired).await
        };
        hpa.scaled(now, current, done);
        println!(
            "weft demo: {SERVICE} {current} → {done} instances ({:.1} requests/s per instance, target {target})",
            reading.value
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(min: usize, max: usize) -> Autoscale {
        Autoscale {
            target: 10.0,
            min,
            max,
        }
    }

    #[test]
    fn the_flag_reads_a_target_and_bounds() {
        assert_eq!("world=10rps".parse(), Ok(spec(1, 10)));
        assert_eq!("world=10rps,min=2,max=6".parse(), Ok(spec(2, 6)));
        assert_eq!("world = 10, max=3".parse(), Ok(spec(1, 3)));
        for bad in [
            "hello=10rps",
            "world",
            "world=fast",
            "world=0rps",
            "world=10rps,min=0",
            "world=10rps,min=5,max=4",
            "world=10rps,max=1000",
            "world=10rps,burst=2",
            "world=10rps,min=x",
        ] {
            assert!(bad.parse::<Autoscale>().is_err(), "{bad}");
        }
    }

    #[test]
    fn proposals_within_the_tolerance_change_nothing() {
        let t = Instant::now();
        let mut hpa = Hpa::new(spec(1, 10), DEFAULT_STABILIZATION, t, 4);
        assert_eq!(hpa.desired(t, 4, 10.9), 4);
        assert_eq!(hpa.desired(t, 4, 9.1), 4);
        assert_eq!(hpa.desired(t, 4, 11.5), 5, "ceil(4 × 1.15)");
    }

    #[test]
    fn a_step_up_is_followed_within_the_scale_up_policies() {
        let t = Instant::now();
        let mut hpa = Hpa::new(spec(1, 30), DEFAULT_STABILIZATION, t, 1);
        // 50 per second on one instance: 5 wanted, and 1 + 4 allowed.
        assert_eq!(hpa.desired(t, 1, 50.0), 5);
        hpa.scaled(t, 1, 5);
        // Far more: doubling (10) or 5 + 4 (9) within the same 15 s, counted from the
        // period's start (1): at most 5 now.
        let t1 = t + Duration::from_secs(5);
        assert_eq!(hpa.desired(t1, 5, 100.0), 5);
        // A period later, from 5: the most of 10 and 9.
        let t2 = t + Duration::from_secs(16);
        assert_eq!(hpa.desired(t2, 5, 100.0), 10);
        // And never past max.
        hpa.scaled(t2, 5, 10);
        let t3 = t + Duration::from_secs(40);
        assert_eq!(hpa.desired(t3, 10, 1000.0), 20);
        assert_eq!(
            Hpa::new(spec(1, 6), DEFAULT_STABILIZATION, t, 4).desired(t, 4, 100.0),
            6
        );
    }

    #[test]
    fn a_step_down_waits_for_the_highest_proposal_of_the_window() {
        let t = Instant::now();
        let window = Duration::from_secs(20);
        let mut hpa = Hpa::new(spec(1, 10), window, t, 5);
        let at = |s| t + Duration::from_secs(s);
        // Load falls to a fifth: each proposal is 1, but 5 was proposed within the window.
        assert_eq!(hpa.desired(at(3), 5, 2.0), 5);
        assert_eq!(hpa.desired(at(6), 5, 2.0), 5);
        assert_eq!(hpa.desired(at(18), 5, 2.0), 5);
        // The start's proposal leaves the window; the highest since is 1.
        assert_eq!(hpa.desired(at(21), 5, 2.0), 1);
        // Never below min.
        let mut hpa = Hpa::new(spec(2, 10), Duration::ZERO, t, 5);
        assert_eq!(hpa.desired(at(1), 5, 0.0), 2);
    }

    #[test]
    fn a_falling_load_is_followed_down_step_by_step() {
        let t = Instant::now();
        let window = Duration::from_secs(20);
        let mut hpa = Hpa::new(spec(1, 10), window, t, 5);
        let at = |s| t + Duration::from_secs(s);
        // Proposals 5, 4, 3, 2, 1 three seconds apart; each leaves the window 20 s later.
        let mut current = 5;
        for (s, metric) in [(30, 8.4), (33, 6.8), (36, 5.2), (39, 3.6), (42, 2.0)] {
            assert_eq!(hpa.desired(at(s), current, metric), current, "at {s}s");
        }
        let mut seen = Vec::new();
        for s in (45..=66).step_by(3) {
            let d = hpa.desired(at(s), current, 2.0);
            hpa.scaled(at(s), current, d);
            current = d;
            seen.push(d);
        }
        assert_eq!(seen, [5, 5, 4, 3, 2, 1, 1, 1]);
    }

    #[test]
    fn the_window_is_two_periods_within_bounds() {
        let s = Duration::from_secs;
        assert_eq!(window(s(3), s(1)), s(15));
        assert_eq!(window(s(15), s(2)), s(30));
        assert_eq!(window(s(60), s(2)), s(30));
        assert_eq!(window(s(3), s(10)), s(20));
    }
}
