//! The slowest recent requests of each service whose traces were kept: the latency
//! histograms' exemplars, as scraped, so the dashboard can lead from a slow service to the
//! traces that show why.

use std::collections::HashMap;

use serde::Serialize;
use weft_metrics::names::{label, sample};

use crate::source::Scrape;

/// How many requests a service lists, and for how long one stays listed.
pub const PER_SERVICE: usize = 5;
pub const RECENT_SECONDS: f64 = 15.0 * 60.0;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Slow {
    pub service: String,
    pub trace_id: String,
    pub latency_ms: f64,
    /// When the request was answered (unix seconds).
    pub at: f64,
    pub endpoint: String,
    /// The node whose proxy the caller went through.
    pub node: Option<String>,
}

#[derive(Default)]
pub struct Slowest {
    by_service: HashMap<String, Vec<Slow>>,
}

impl Slowest {
    /// Takes the exemplars of callers' latencies (the outbound's) from `scrapes`, keeping
    /// each service's slowest within the last [`RECENT_SECONDS`] of `now`.
    pub fn ingest(&mut self, now: f64, scrapes: &[Scrape]) {
        for s in scrapes {
            for e in &s.exemplars {
                let at = e.timestamp.unwrap_or(now);
                if now - at > RECENT_SECONDS {
                    continue;
                }
                let sample = &e.sample;
                if sample.name != sample::LATENCY_BUCKET
                    || sample.label(label::DIRECTION) != Some("outbound")
                {
                    continue;
                }
                let (Some(service), Some(trace_id)) =
                    (sample.label(label::SERVICE), e.label(label::TRACE_ID))
                else {
                    continue;
                };
                // A trace id is 32 lowercase hex digits; anything else a scrape target sends
                // goes nowhere near a link.
                let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
                if trace_id.len() != 32 || !trace_id.bytes().all(hex) {
                    continue;
                }
                let slow = Slow {
                    service: service.to_string(),
                    trace_id: trace_id.to_string(),
                    latency_ms: e.value * 1000.0,
                    at,
                    endpoint: sample.label(label::ENDPOINT).unwrap_or("").to_string(),
                    node: s.node.clone(),
                };
                let list = self.by_service.entry(slow.service.clone()).or_default();
                if !list.iter().any(|l| l.trace_id == slow.trace_id) {
                    list.push(slow);
                }
                // Cut as it grows: a scrape may carry a bucket's exemplar per endpoint.
                if list.len() > 4 * PER_SERVICE {
                    cut(list);
                }
            }
        }
        for list in self.by_service.values_mut() {
            list.retain(|l| now - l.at <= RECENT_SECONDS);
            cut(list);
        }
        self.by_service.retain(|_, list| !list.is_empty());
    }

    /// The slowest of `service`, or of every service (each service's own, slowest first).
    pub fn list(&self, service: Option<&str>) -> Vec<Slow> {
        let mut out: Vec<Slow> = self
            .by_service
            .iter()
            .filter(|(name, _)| service.is_none_or(|s| s.is_empty() || s == name.as_str()))
            .flat_map(|(_, list)| list.iter().cloned())
            .collect();
        out.sort_by(|a, b| b.latency_ms.total_cmp(&a.latency_ms));
        out
    }
}

/// The slowest first, and no more than a service lists.
fn cut(list: &mut Vec<Slow>) {
    list.sort_by(|a, b| b.latency_ms.total_cmp(&a.latency_ms));
    list.truncate(PER_SERVICE);
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_metrics::parse::{Exemplar, Sample};

    fn scrape(exemplars: &[(&str, &str, &str, f64, f64)]) -> Scrape {
        let exemplars = exemplars
            .iter()
            .map(|&(direction, service, trace, seconds, at)| Exemplar {
                sample: Sample {
                    name: sample::LATENCY_BUCKET.into(),
                    labels: vec![
                        ("direction".into(), direction.into()),
                        ("service".into(), service.into()),
                        ("endpoint".into(), "10.0.0.1:80".into()),
                    ],
                    value: 1.0,
                },
                labels: vec![("trace_id".into(), trace.into())],
                value: seconds,
                timestamp: Some(at),
            })
            .collect();
        Scrape {
            target: "p1".into(),
            node: Some("node-1".into()),
            identity: None,
            up: true,
            samples: Vec::new(),
            exemplars,
            at: None,
        }
    }

    #[test]
    fn each_service_keeps_its_slowest_recent_callers_view_once_per_trace() {
        let mut s = Slowest::default();
        let now = 10_000.0;
        let ids: Vec<String> = "abcdef01"
            .chars()
            .map(|c| c.to_string().repeat(32))
            .collect();
        let mut seen: Vec<(&str, &str, &str, f64, f64)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| ("outbound", "world", id.as_str(), i as f64 / 10.0, now))
            .collect();
        // The instance's own view, and a request older than the window, are not listed.
        let (inbound, old) = ("9".repeat(32), "8".repeat(32));
        seen.push(("inbound", "world", &inbound, 9.0, now));
        seen.push(("outbound", "world", &old, 9.0, now - RECENT_SECONDS - 1.0));
        // Not a trace id: never listed, whatever its latency.
        seen.push(("outbound", "world", "\"><script>", 9.0, now));
        s.ingest(now, &[scrape(&seen)]);
        // Scraped again: the same exemplars are not listed twice.
        s.ingest(now + 1.0, &[scrape(&seen)]);
        let listed: Vec<String> = s
            .list(Some("world"))
            .into_iter()
            .map(|l| l.trace_id)
            .collect();
        assert_eq!(listed, ids[3..].iter().rev().cloned().collect::<Vec<_>>());
        assert!(s.list(Some("hello")).is_empty());
        assert_eq!(s.list(None).len(), PER_SERVICE);
    }
}
