//! The proxy's part in distributed tracing (`[tracing]`): where spans go, how many new
//! traces are sampled, and which requests are kept whatever the head decision said.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration;

/// Off unless `otlp` names a collector: then every request joins (or starts) a trace, and
/// its spans are exported when sampled, failed or slow.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// The OTLP/gRPC collector (`HOST:PORT`, as `otel-collector.observability:4317`).
    pub otlp: Option<String>,
    /// The share of new traces sampled at their first proxy, 0 to 1. A caller's own
    /// decision (a `traceparent` or B3 flag) is honoured instead, except from outside the
    /// mesh (at the ingress) unless `trust_ingress_sampling`.
    pub sample_rate: f64,
    /// Whether the ingress honours an outside caller's sampling decision. Off: anyone on
    /// the internet could have every request of theirs exported.
    pub trust_ingress_sampling: bool,
    /// Requests whose answer is a failure are exported even when not sampled.
    pub keep_failed: bool,
    /// Requests slower than this to their response's headers (the latency the metrics
    /// show; a long stream is not slow for lasting) are exported even when not sampled;
    /// `0s` keeps none for being slow.
    #[serde(with = "duration")]
    pub keep_slower_than: Duration,
    /// Finished requests whose spans wait for export (each one span, and one more per
    /// attempt on the outbound); past it, a request's spans are dropped and counted.
    pub queue: usize,
    /// Spans per export request (a batch may pass it by one request's spans).
    pub batch: usize,
    /// The longest a span waits for its batch to fill.
    #[serde(with = "duration")]
    pub batch_interval: Duration,
    /// How long one export may take before its batch is dropped.
    #[serde(with = "duration")]
    pub export_timeout: Duration,
}

// The queue, batch and interval are the OpenTelemetry SDK's batch processor defaults.
impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            otlp: None,
            sample_rate: 0.01,
            trust_ingress_sampling: false,
            keep_failed: true,
            keep_slower_than: Duration::from_secs(1),
            queue: 2048,
            batch: 512,
            batch_interval: Duration::from_secs(5),
            export_timeout: Duration::from_secs(10),
        }
    }
}

impl TracingConfig {
    pub fn enabled(&self) -> bool {
        self.otlp.is_some()
    }

    /// The collector's `HOST:PORT`, as OTLP's own settings write it too (`http://` before
    /// it); `None` when `otlp` is neither.
    pub fn collector(&self) -> Option<&str> {
        let otlp = self.otlp.as_deref()?;
        let addr = otlp
            .strip_prefix("http://")
            .unwrap_or(otlp)
            .trim_end_matches('/');
        let (host, port) = addr.rsplit_once(':')?;
        let host_ok = !host.is_empty()
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':')
            });
        (host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)).then_some(addr)
    }

    pub(super) fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err(format!(
                "tracing.sample_rate = {} is not between 0 and 1",
                self.sample_rate
            ));
        }
        if let Some(otlp) = &self.otlp {
            if self.collector().is_none() {
                return Err(format!(
                    "tracing.otlp = {otlp:?} is not HOST:PORT (or http://HOST:PORT; no TLS yet)"
                ));
            }
        }
        if self.batch == 0 || self.batch > self.queue || self.queue > 1 << 20 {
            return Err(format!(
                "tracing.batch = {} and tracing.queue = {}: need 0 < batch <= queue <= 1048576",
                self.batch, self.queue
            ));
        }
        if self.batch_interval.is_zero() || self.export_timeout.is_zero() {
            return Err(
                "tracing.batch_interval and tracing.export_timeout must be above zero".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ProxyConfig;

    fn check(text: &str) -> Result<ProxyConfig, String> {
        let config: ProxyConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config
            .validate(std::path::Path::new("proxy.toml"))
            .map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn tracing_is_off_unless_a_collector_is_named_and_bad_values_are_refused_by_name() {
        let off = check("").unwrap();
        assert!(!off.tracing.enabled());
        let on =
            check("[tracing]\notlp = \"otel.observability:4317\"\nkeep_slower_than = \"0s\"\n")
                .unwrap();
        assert!(on.tracing.enabled());
        for (text, names) in [
            ("sample_rate = 1.5", "tracing.sample_rate"),
            ("otlp = \"no-port\"", "tracing.otlp"),
            ("otlp = \"host:0\"", "tracing.otlp"),
            ("otlp = \"https://host:4317\"", "tracing.otlp"),
            ("otlp = \"host/x:4317\"", "tracing.otlp"),
            ("batch = 4096", "tracing.batch"),
            ("batch = 0", "tracing.batch"),
            ("batch_interval = \"0s\"", "tracing.batch_interval"),
        ] {
            let err = check(&format!("[tracing]\n{text}\n")).unwrap_err();
            assert!(
                err.contains(names) && err.contains("proxy.toml"),
                "{text}: {err}"
            );
        }
    }
}
