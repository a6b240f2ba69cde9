//! Resilience policy: how a service's requests are balanced, retried, timed out and cut off
//! from failing endpoints. A global `[resilience]` section sets defaults; `[services.NAME]`
//! overrides any of them for one service. Everything here is reloadable.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::{self, opt_duration};

/// The longest any configured duration, or any deadline, may reach: beyond it `Instant`
/// arithmetic can overflow, and no request waits a day.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The error for the first of `durations` (named by their config keys) over [`MAX_DURATION`].
pub fn check_max_durations(durations: &[(&str, Duration)]) -> Result<(), String> {
    match durations.iter().find(|(_, d)| *d > MAX_DURATION) {
        Some((name, _)) => Err(format!("{name} must be at most 24h")),
        None => Ok(()),
    }
}

/// The policy one service runs with, every value resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub balancer: BalancerPolicy,
    pub accrual: AccrualPolicy,
    pub retry: RetryPolicy,
    pub timeout: TimeoutPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BalancerPolicy {
    /// The latency an endpoint is assumed to have before it answers anything.
    #[serde(with = "duration")]
    pub default_rtt: Duration,
    /// How fast a past latency peak is forgotten.
    #[serde(with = "duration")]
    pub decay: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccrualPolicy {
    /// Consecutive failures that open the circuit (0 disables).
    pub consecutive_failures: u32,
    /// Success rate under which the circuit opens (0 disables) …
    pub min_success_rate: f64,
    /// … measured over this window …
    #[serde(with = "duration")]
    pub window: Duration,
    /// … once it holds at least this many responses.
    pub min_requests: u32,
    #[serde(with = "duration")]
    pub backoff_min: Duration,
    #[serde(with = "duration")]
    pub backoff_max: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Retries may add this fraction to the requests sent …
    pub budget_ratio: f64,
    /// … plus this many per second …
    pub budget_min_per_second: u32,
    /// … counted over this window.
    #[serde(with = "duration")]
    pub budget_ttl: Duration,
    /// Retries one request may make at most.
    pub max_retries: u32,
    /// Response statuses worth retrying: codes (`503`) or classes (`5xx`).
    pub statuses: Vec<String>,
    /// Methods whose requests may be sent twice.
    pub methods: Vec<String>,
    /// gRPC status codes worth retrying, whatever the method.
    pub grpc_codes: Vec<u32>,
    /// Request bodies up to this size are kept for replay; larger ones are not retried.
    pub buffer_limit: usize,
    #[serde(with = "duration")]
    pub backoff: Duration,
    #[serde(with = "duration")]
    pub backoff_max: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeoutPolicy {
    /// Covers every attempt, up to the response headers (0: none).
    #[serde(with = "duration")]
    pub total: Duration,
    /// Covers one attempt (0: none).
    #[serde(with = "duration")]
    pub per_attempt: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            balancer: BalancerPolicy {
                default_rtt: Duration::from_millis(30),
                decay: Duration::from_secs(10),
            },
            accrual: AccrualPolicy {
                consecutive_failures: 7,
                min_success_rate: 0.0,
                window: Duration::from_secs(30),
                min_requests: 20,
                backoff_min: Duration::from_secs(1),
                backoff_max: Duration::from_secs(60),
            },
            retry: RetryPolicy {
                budget_ratio: 0.2,
                budget_min_per_second: 10,
                budget_ttl: Duration::from_secs(10),
                max_retries: 2,
                statuses: vec!["5xx".into()],
                methods: ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]
                    .map(String::from)
                    .to_vec(),
                grpc_codes: vec![14],
                buffer_limit: 64 * 1024,
                backoff: Duration::from_millis(10),
                backoff_max: Duration::from_millis(200),
            },
            timeout: TimeoutPolicy {
                total: Duration::from_secs(30),
                per_attempt: Duration::ZERO,
            },
        }
    }
}

/// A config section that may set any policy value; unset ones come from the layer below.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyOverrides {
    pub balancer: BalancerOverrides,
    pub failure_accrual: AccrualOverrides,
    pub retry: RetryOverrides,
    pub timeout: TimeoutOverrides,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BalancerOverrides {
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub default_rtt: Option<Duration>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub decay: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccrualOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_success_rate: Option<f64>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u32>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub backoff_min: Option<Duration>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub backoff_max: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_min_per_second: Option<u32>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub budget_ttl: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_codes: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer_limit: Option<usize>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Duration>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub backoff_max: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutOverrides {
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub total: Option<Duration>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub per_attempt: Option<Duration>,
}

fn set<T: Clone>(slot: &mut T, v: &Option<T>) {
    if let Some(v) = v {
        *slot = v.clone();
    }
}

impl PolicyOverrides {
    /// `base` with every value this section sets replaced.
    pub fn apply(&self, base: &Policy) -> Policy {
        let mut p = base.clone();
        set(&mut p.balancer.default_rtt, &self.balancer.default_rtt);
        set(&mut p.balancer.decay, &self.balancer.decay);
        let a = &self.failure_accrual;
        set(&mut p.accrual.consecutive_failures, &a.consecutive_failures);
        set(&mut p.accrual.min_success_rate, &a.min_success_rate);
        set(&mut p.accrual.window, &a.window);
        set(&mut p.accrual.min_requests, &a.min_requests);
        set(&mut p.accrual.backoff_min, &a.backoff_min);
        set(&mut p.accrual.backoff_max, &a.backoff_max);
        let r = &self.retry;
        set(&mut p.retry.budget_ratio, &r.budget_ratio);
        set(&mut p.retry.budget_min_per_second, &r.budget_min_per_second);
        set(&mut p.retry.budget_ttl, &r.budget_ttl);
        set(&mut p.retry.max_retries, &r.max_retries);
        set(&mut p.retry.statuses, &r.statuses);
        set(&mut p.retry.methods, &r.methods);
        set(&mut p.retry.grpc_codes, &r.grpc_codes);
        set(&mut p.retry.buffer_limit, &r.buffer_limit);
        set(&mut p.retry.backoff, &r.backoff);
        set(&mut p.retry.backoff_max, &r.backoff_max);
        set(&mut p.timeout.total, &self.timeout.total);
        set(&mut p.timeout.per_attempt, &self.timeout.per_attempt);
        p
    }
}

impl Policy {
    /// Checks values that parse but make no sense; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.accrual.min_success_rate) {
            return Err("failure_accrual.min_success_rate must be between 0 and 1".into());
        }
        if self.accrual.backoff_min.is_zero() || self.accrual.backoff_max < self.accrual.backoff_min
        {
            return Err(
                "failure_accrual.backoff_min must be above zero and at most backoff_max".into(),
            );
        }
        if !(0.0..=10.0).contains(&self.retry.budget_ratio) {
            return Err("retry.budget_ratio must be between 0 and 10".into());
        }
        if self.retry.budget_ttl < Duration::from_secs(1)
            || self.retry.budget_ttl > Duration::from_secs(60)
        {
            return Err("retry.budget_ttl must be between 1s and 60s".into());
        }
        for s in &self.retry.statuses {
            if parse_status_pattern(s).is_none() {
                return Err(format!(
                    "retry.statuses: {s:?} is neither a status (503) nor a class (5xx)"
                ));
            }
        }
        check_max_durations(&[
            ("balancer.default_rtt", self.balancer.default_rtt),
            ("balancer.decay", self.balancer.decay),
            ("failure_accrual.window", self.accrual.window),
            ("failure_accrual.backoff_max", self.accrual.backoff_max),
            ("retry.backoff_max", self.retry.backoff_max),
            ("timeout.total", self.timeout.total),
            ("timeout.per_attempt", self.timeout.per_attempt),
        ])?;
        if self.balancer.decay.is_zero() || self.balancer.default_rtt.is_zero() {
            return Err("balancer.decay and balancer.default_rtt must be above zero".into());
        }
        Ok(())
    }
}

/// `503` → 503..=503, `5xx` → 500..=599.
pub fn parse_status_pattern(s: &str) -> Option<(u16, u16)> {
    let s = s.trim();
    if let Some(class) = s.strip_suffix("xx") {
        let c: u16 = class.parse().ok().filter(|c| (1..=5).contains(c))?;
        return Some((c * 100, c * 100 + 99));
    }
    let code: u16 = s.parse().ok().filter(|c| (100..=599).contains(c))?;
    Some((code, code))
}

/// The resolved policies for every service the config names, and the default.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policies {
    pub default: Policy,
    pub services: BTreeMap<String, Policy>,
}

impl Policies {
    pub fn for_service(&self, service: &str) -> &Policy {
        self.services.get(service).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_section_overrides_only_what_it_sets() {
        let o: PolicyOverrides =
            toml::from_str("[retry]\nmax_retries = 5\n[timeout]\ntotal = \"2s\"\n").unwrap();
        let p = o.apply(&Policy::default());
        assert_eq!(p.retry.max_retries, 5);
        assert_eq!(p.timeout.total, Duration::from_secs(2));
        assert_eq!(p.retry.budget_ratio, 0.2);
        assert_eq!(p.accrual.consecutive_failures, 7);
    }

    #[test]
    fn status_patterns() {
        assert_eq!(parse_status_pattern("5xx"), Some((500, 599)));
        assert_eq!(parse_status_pattern("503"), Some((503, 503)));
        assert_eq!(parse_status_pattern("6xx"), None);
        assert_eq!(parse_status_pattern("abc"), None);
    }
}
