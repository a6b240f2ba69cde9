//! Text read from files, flags and queries: the proxy's config, a discovery file, durations,
//! Kubernetes label selectors, tap filters, and the metrics expositions the dashboard
//! scrapes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use weft_core::config::{ConfigError, ProxyConfig};
use weft_core::label_selector::{Requirement, Selector};
use weft_core::tap::TapFilter;
use weft_discovery::{DiscoveryError, Table};

/// A config file: an error names a line of the text; a config accepted is valid, and
/// written out as the admin endpoint shows it and read back, it is the same config with
/// the same policies.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/proxy.toml");
    let config = match ProxyConfig::parse(path, text) {
        Ok(config) => config,
        Err(ConfigError::Parse(e)) => {
            assert!(e.line <= text.lines().count() + 1, "{e}");
            return;
        }
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let policies = config.policies().expect("a valid config's policies");
    let shown = serde_json::to_value(&config).expect("a config serialises");
    let back: ProxyConfig = serde_json::from_value(shown.clone()).expect("and reads back");
    back.validate(path).expect("still valid");
    assert_eq!(back.policies().expect("policies"), policies);
    assert_eq!(serde_json::to_value(&back).expect("serialises"), shown);
}

/// A discovery file: an error names a line of the text; a table accepted holds only what
/// its checks promise (weights of at least 1, no port 0, no endpoint twice, route backends
/// that are services of the file).
pub fn discovery_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let table = match Table::parse(Path::new("/fuzz/discovery.toml"), text) {
        Ok(table) => table,
        Err(DiscoveryError::Parse(e)) => {
            assert!(e.line <= text.lines().count() + 1, "{e}");
            return;
        }
        Err(e) => panic!("no I/O when parsing text: {e}"),
    };
    for set in table.services.values() {
        assert!(!set.ports().contains(&0));
        let mut seen = std::collections::HashSet::new();
        for endpoint in set.iter() {
            assert!(endpoint.weight >= 1);
            assert!(seen.insert(endpoint.addr), "{} twice", endpoint.addr);
        }
    }
    for routes in table.routes.values() {
        for rule in routes.rules() {
            for backend in &rule.backends {
                assert!(table.services.contains_key(&backend.service));
            }
        }
    }
}

/// A duration as people write it: written back in the form config output uses and read
/// again, it is the same duration to the millisecond (finer when it is shorter than one),
/// and a duration that is not zero never comes back as zero (which means "none" to a
/// timeout).
pub fn duration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(d) = weft_core::duration::parse(text) else {
        return;
    };
    let written = weft_core::duration::format(&d);
    let back = weft_core::duration::parse(&written).expect("a written duration reads back");
    assert_eq!(back.is_zero(), d.is_zero(), "{text:?} → {written:?}");
    // Within a microsecond, and within what an f64 of seconds can tell apart.
    let error = back.abs_diff(d);
    let tolerance = Duration::from_micros(1).max(d.mul_f64(1e-12));
    assert!(
        error <= tolerance,
        "{text:?} → {d:?} → {written:?} → {back:?}"
    );
}

/// A Kubernetes label selector: matching never panics, and a selector without a key's
/// requirements pins no value for it.
pub fn label_selector(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(selector) = Selector::parse(text) else {
        return;
    };
    let mut labels = BTreeMap::new();
    for requirement in &selector.0 {
        let key = requirement.key();
        assert!(selector.without(key).pinned(key).is_none());
        if let Requirement::In(_, values) | Requirement::NotIn(_, values) = requirement {
            if let Some(value) = values.first() {
                labels.insert(key.to_string(), value.clone());
            }
        }
    }
    let _ = selector.matches(&labels);
    let _ = selector.matches(&BTreeMap::new());
}

/// A tap subscriber's query: a filter accepted reads back from the query it writes.
pub fn tap_filter(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(filter) = TapFilter::parse(query) else {
        return;
    };
    let written = filter.to_query();
    assert_eq!(TapFilter::parse(&written), Ok(filter), "{written:?}");
}

/// A metrics exposition as a proxy serves it (text or OpenMetrics): every exemplar belongs
/// to a sample the parser also reads, and label lookups hold.
pub fn metrics_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let samples = weft_metrics::parse::parse(&text);
    for sample in &samples {
        for (key, value) in &sample.labels {
            assert!(sample.label(key).is_some());
            let _ = value;
        }
    }
    for exemplar in weft_metrics::parse::exemplars(&text) {
        assert!(
            samples.iter().any(|s| {
                s.name == exemplar.sample.name
                    && s.labels == exemplar.sample.labels
                    && (s.value == exemplar.sample.value
                        || (s.value.is_nan() && exemplar.sample.value.is_nan()))
            }),
            "{exemplar:?}"
        );
        let _ = exemplar.label("trace_id");
    }
}
