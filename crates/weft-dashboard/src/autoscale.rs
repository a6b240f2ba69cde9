//! What autoscalers read: a service's figures over a window, from the same history the
//! dashboard shows, for the Kubernetes external metrics API ([`crate::metrics_api`]) and
//! KEDA's external scaler alike. A figure the history cannot back (no rounds yet, a service
//! no proxy has seen, a quantile without requests) is no reading, never a zero: an
//! autoscaler given a zero would scale a service down to its minimum.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::history::{History, Key, Stats};
use crate::Shared;

/// The figures an autoscaler may ask for, by the names the APIs give them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Requests callers sent the service, per second.
    RequestsPerSecond,
    /// The same, divided by the service's ready instances.
    RequestsPerSecondPerInstance,
    /// Requests in flight, on average over the window (Little's law).
    InFlightRequests,
    /// The 99th percentile latency callers saw, in seconds.
    P99LatencySeconds,
    /// The share of requests that succeeded, as callers saw them (0 to 1).
    SuccessRate,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::RequestsPerSecond,
        Metric::RequestsPerSecondPerInstance,
        Metric::InFlightRequests,
        Metric::P99LatencySeconds,
        Metric::SuccessRate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::RequestsPerSecond => "requests-per-second",
            Self::RequestsPerSecondPerInstance => "requests-per-second-per-instance",
            Self::InFlightRequests => "in-flight-requests",
            Self::P99LatencySeconds => "p99-latency-seconds",
            Self::SuccessRate => "success-rate",
        }
    }

    /// The metric a name stands for; Kubernetes lowercases metric names in the path.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Every name, for messages that say what there is.
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

/// The label (or scaler metadata key) that chooses the window.
pub const WINDOW_LABEL: &str = "window";
/// The label (or scaler metadata key) that chooses the service.
pub const SERVICE_LABEL: &str = "service";
/// The window when none is asked for: as long as the HPA's default sync period twice over,
/// short enough to follow a step in load within a scaling decision or two.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);

/// A figure and when it was true.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub value: f64,
    /// The end of the window: the latest collection round.
    pub at: SystemTime,
    pub window: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NoReading {
    #[error("no figures collected yet: the dashboard has just started")]
    NotStarted,
    #[error("no proxy has seen requests for service {0} in namespace {1}")]
    UnknownService(String, String),
    #[error("service {0} has no ready instances known to the proxies")]
    NoInstances(String),
    #[error("service {0} had no requests over the last {1}s: {2} is undefined")]
    NoRequests(String, u64, &'static str),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BadWindow {
    #[error("window {0:?} is not a duration (such as 30s or 2m)")]
    Unreadable(String),
    #[error("window {given}s is out of range: from {min}s (two collection rounds) to {max}s (the history kept)")]
    OutOfRange { given: u64, min: u64, max: u64 },
}

/// A window as asked (`30s`, `2m`), within what the history can answer: at least two
/// collection rounds, at most the history kept.
pub fn window(shared: &Shared, asked: Option<&str>) -> Result<Duration, BadWindow> {
    let Some(asked) = asked else {
        return Ok(DEFAULT_WINDOW.clamp(min_window(shared), shared.kept));
    };
    let w = weft_core::duration::parse(asked).map_err(|_| BadWindow::Unreadable(asked.into()))?;
    let (min, max) = (min_window(shared), shared.kept);
    if w < min || w > max {
        return Err(BadWindow::OutOfRange {
            given: w.as_secs(),
            min: min.as_secs_f64().ceil() as u64,
            max: max.as_secs(),
        });
    }
    Ok(w)
}

fn min_window(shared: &Shared) -> Duration {
    (shared.interval * 2).max(Duration::from_secs(1))
}

/// Whether the `service` label a proxy gave (the name callers used: `world`,
/// `world.prod`, `world.prod.svc.cluster.local`, with or without a port) is `name` in
/// `namespace`; a bare name is in `default`, as the control plane reads it.
pub fn is_service(label: &str, namespace: &str, name: &str) -> bool {
    let host = label.trim_end_matches('.');
    let host = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let mut parts = host.split('.');
    let (Some(n), ns) = (parts.next(), parts.next().unwrap_or("default")) else {
        return false;
    };
    // Past the namespace only `svc` and the cluster's domain may follow.
    let rest: Vec<&str> = parts.collect();
    if !rest.is_empty() && !rest[0].eq_ignore_ascii_case("svc") {
        return false;
    }
    n.eq_ignore_ascii_case(name) && ns.eq_ignore_ascii_case(namespace)
}

/// The services in `namespace` the history knows, by name: those callers sent requests to
/// lately, and those whose instances proxies report.
pub fn services(history: &History, namespace: &str) -> Vec<String> {
    let mut names: Vec<String> = history
        .keys()
        .into_iter()
        .filter_map(|k| match k {
            Key::Service(s) => Some(s),
            _ => None,
        })
        .chain(history.instance_services())
        .filter_map(|label| {
            let name = label.split(['.', ':']).next()?.to_ascii_lowercase();
            is_service(&label, namespace, &name).then_some(name)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `metric` of service `name` in `namespace` over `window`, as of the latest round.
pub fn read(
    history: &History,
    namespace: &str,
    name: &str,
    metric: Metric,
    window: Duration,
) -> Result<Reading, NoReading> {
    let at = history.last_round().ok_or(NoReading::NotStarted)?;
    let at = UNIX_EPOCH + Duration::from_secs_f64(at);
    let of_service = |k: &Key| matches!(k, Key::Service(s) if is_service(s, namespace, name));
    let instances = history
        .instance_services()
        .filter(|s| is_service(s, namespace, name))
        .filter_map(|s| history.instances(&s))
        .reduce(f64::max);
    if !history.keys().iter().any(of_service) && instances.is_none() {
        return Err(NoReading::UnknownService(name.into(), namespace.into()));
    }
    let stats: Stats = history.stats_of_all(of_service, window.as_secs_f64());
    let undefined = |what| NoReading::NoRequests(name.into(), window.as_secs(), what);
    let value = match metric {
        Metric::RequestsPerSecond => stats.rps,
        Metric::RequestsPerSecondPerInstance => match instances {
            Some(n) if n > 0.0 => stats.rps / n,
            _ => return Err(NoReading::NoInstances(name.into())),
        },
        Metric::InFlightRequests => stats.in_flight,
        Metric::P99LatencySeconds => stats.p99_ms.ok_or(undefined("p99 latency"))? / 1000.0,
        Metric::SuccessRate => stats.success_rate.ok_or(undefined("the success rate"))?,
    };
    Ok(Reading { value, at, window })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_labels_name_a_namespace() {
        assert!(is_service("world", "default", "world"));
        assert!(is_service("world:80", "default", "world"));
        assert!(is_service("world.default", "default", "world"));
        assert!(is_service("World.Prod.svc.cluster.local", "prod", "world"));
        assert!(is_service("world.prod.svc:8080", "prod", "world"));
        assert!(!is_service("world", "prod", "world"));
        assert!(!is_service("world.prod", "default", "world"));
        assert!(!is_service("world.prod.example.com", "prod", "world"));
        assert!(!is_service("worlds", "default", "world"));
    }

    #[test]
    fn metric_names_round_trip() {
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()), Some(m));
        }
        assert_eq!(
            Metric::from_name("Requests-Per-Second"),
            Some(Metric::RequestsPerSecond)
        );
        assert_eq!(Metric::from_name("cpu"), None);
    }
}
