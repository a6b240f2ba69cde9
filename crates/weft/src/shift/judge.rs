//! The canary's verdict, from the mesh's own figures over one window: every attempt the
//! proxies sent to the canary against every attempt sent to the backend it replaces. Too
//! little traffic to tell is *hold*, never *promote* (Flagger promotes or fails on "no
//! values found": fluxcd/flagger#1035, #1011).

use std::fmt;

/// One backend's figures over the window, added up over every proxy and rule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    pub attempts: f64,
    pub success_rate: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Attempts to each backend before their p99s are compared.
pub const P99_SAMPLE: f64 = 100.0;

#[derive(Clone, Debug)]
pub struct Criteria {
    /// Attempts the canary must have had in the window before it is judged at all.
    pub min_requests: f64,
    /// The canary fails when its success rate is below the baseline's by more than this.
    pub max_success_drop: f64,
    /// The canary fails when its p99 is above the baseline's times this …
    pub max_p99_ratio: f64,
    /// … and above it by more than this many milliseconds (sub-millisecond p99s jitter).
    pub p99_slack_ms: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Not enough traffic to tell: the step neither advances nor rolls back.
    Hold(String),
    Healthy,
    /// Roll back, for this reason.
    Failing(String),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hold(why) => write!(f, "hold ({why})"),
            Self::Healthy => f.write_str("healthy"),
            Self::Failing(why) => write!(f, "failing ({why})"),
        }
    }
}

/// The canary against `baseline` (the backend it replaces, over the same window; its last
/// figures with enough traffic once the canary takes everything).
pub fn judge(canary: &Figures, baseline: Option<&Figures>, c: &Criteria) -> Verdict {
    if canary.attempts < c.min_requests {
        return Verdict::Hold(format!(
            "{:.0} attempts to the canary in the window, {:.0} needed",
            canary.attempts, c.min_requests
        ));
    }
    let baseline_sr = baseline.and_then(|b| b.success_rate).unwrap_or(1.0);
    if let Some(sr) = canary.success_rate {
        let floor = baseline_sr - c.max_success_drop;
        if sr < floor {
            return Verdict::Failing(format!(
                "success {:.2}% is below {:.2}%: the current backend's {:.2}% less {:.2} points",
                sr * 100.0,
                floor * 100.0,
                baseline_sr * 100.0,
                c.max_success_drop * 100.0
            ));
        }
    }
    // A p99 over fewer than 100 attempts is the slowest of them, whatever it was: a
    // connection opened, a collection. Promotion waits until latency can be judged.
    let enough = |f: &Figures| f.attempts >= P99_SAMPLE;
    if !enough(canary) || !baseline.is_some_and(enough) {
        return Verdict::Hold(format!(
            "success rate fine; p99 needs {P99_SAMPLE:.0} attempts to each backend in the window (the canary has {:.0}, the current backend {:.0})",
            canary.attempts,
            baseline.map_or(0.0, |b| b.attempts)
        ));
    }
    if let (Some(p99), Some(base)) = (canary.p99_ms, baseline.and_then(|b| b.p99_ms)) {
        let ceiling = (base * c.max_p99_ratio).max(base + c.p99_slack_ms);
        if p99 > ceiling {
            return Verdict::Failing(format!(
                "p99 {p99:.1} ms is above {ceiling:.1} ms (the current backend's {base:.1} ms × {})",
                c.max_p99_ratio
            ));
        }
    }
    Verdict::Healthy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criteria() -> Criteria {
        Criteria {
            min_requests: 50.0,
            max_success_drop: 0.01,
            max_p99_ratio: 1.5,
            p99_slack_ms: 5.0,
        }
    }

    fn f(attempts: f64, sr: f64, p99: f64) -> Figures {
        Figures {
            attempts,
            success_rate: Some(sr),
            p99_ms: Some(p99),
        }
    }

    #[test]
    fn too_little_traffic_holds_whatever_the_figures() {
        let v = judge(
            &f(3.0, 0.0, 900.0),
            Some(&f(1000.0, 1.0, 10.0)),
            &criteria(),
        );
        assert!(matches!(v, Verdict::Hold(_)), "{v}");
        // No figures at all: hold, never promote.
        let v = judge(&Figures::default(), None, &criteria());
        assert!(matches!(v, Verdict::Hold(_)), "{v}");
    }

    #[test]
    fn a_failing_or_slow_canary_fails_and_a_healthy_one_passes() {
        let base = f(1000.0, 0.999, 10.0);
        assert!(matches!(
            judge(&f(100.0, 0.95, 10.0), Some(&base), &criteria()),
            Verdict::Failing(why) if why.contains("success 95.00%")
        ));
        assert!(matches!(
            judge(&f(100.0, 1.0, 40.0), Some(&base), &criteria()),
            Verdict::Failing(why) if why.contains("p99 40.0 ms")
        ));
        assert_eq!(
            judge(&f(100.0, 0.995, 12.0), Some(&base), &criteria()),
            Verdict::Healthy
        );
        // As good as a current backend that fails 10 %: healthy, the mesh's own baseline.
        let flaky = f(1000.0, 0.9, 10.0);
        assert_eq!(
            judge(&f(100.0, 0.9, 10.0), Some(&flaky), &criteria()),
            Verdict::Healthy
        );
        // Enough to judge success, not yet latency: hold, never promote.
        assert!(matches!(
            judge(&f(60.0, 1.0, 90.0), Some(&base), &criteria()),
            Verdict::Hold(why) if why.contains("p99 needs 100")
        ));
        // Sub-millisecond p99s: within the slack.
        let fast = f(1000.0, 1.0, 0.4);
        assert_eq!(
            judge(&f(100.0, 1.0, 0.9), Some(&fast), &criteria()),
            Verdict::Healthy
        );
    }
}
