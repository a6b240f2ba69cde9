//! Reads the Prometheus text format (or OpenMetrics) back into samples, and OpenMetrics'
//! exemplars, for the dashboard's scraper. Only what weft exports needs to round-trip;
//! anything unparsable is skipped, not fatal.

/// One sample line: `name{label="value",…} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        label(&self.labels, key)
    }
}

fn label<'a>(labels: &'a [(String, String)], key: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

/// An OpenMetrics exemplar: `bucket{…} 3 # {trace_id="…"} 0.043 1767312000.5`.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// The sample it is attached to.
    pub sample: Sample,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Unix seconds, when the exposition gives one.
    pub timestamp: Option<f64>,
}

impl Exemplar {
    pub fn label(&self, key: &str) -> Option<&str> {
        label(&self.labels, key)
    }
}

/// Every exemplar in an OpenMetrics exposition (the text format has none).
pub fn exemplars(text: &str) -> Vec<Exemplar> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (sample, exemplar) = l.split_once(EXEMPLAR)?;
            let (labels, rest) = parse_labels(exemplar)?;
            let mut rest = rest.split_whitespace();
            let value = rest.next()?.parse().ok()?;
            let timestamp = rest.next().and_then(|t| t.parse().ok());
            Some(Exemplar {
                sample: parse_line(sample)?,
                labels,
                value,
                timestamp,
            })
        })
        .collect()
}

/// What separates a sample from its exemplar. Label values weft exports never hold it:
/// they are service names, addresses and fixed words.
pub const EXEMPLAR: &str = " # {";

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let (labels, rest) = if let Some(body) = rest.strip_prefix('{') {
        parse_labels(body)?
    } else {
        (Vec::new(), rest)
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Parses `k="v",…}` and returns the labels and what follows the closing brace.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_string();
        let mut chars = s[eq + 1..].char_indices();
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in chars {
            match (escaped, c) {
                (true, 'n') => {
                    value.push('\n');
                    escaped = false;
                }
                (true, c) => {
                    value.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(eq + 1 + i + 1);
                    break;
                }
                (false, c) => value.push(c),
            }
        }
        labels.push((key, value));
        s = &s[end?..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_round_trip_from_our_own_exposition() {
        let m = crate::Metrics::new("n1");
        let r = m
            .http
            .route(crate::Direction::Outbound, "world", "127.0.0.1:80");
        r.request();
        r.latency(std::time::Duration::from_millis(3));
        let samples = parse(&m.render_text());
        let req = samples
            .iter()
            .find(|s| s.name == "weft_requests_total" && s.label("service") == Some("world"))
            .unwrap();
        assert_eq!(req.value, 1.0);
        assert_eq!(req.label("endpoint"), Some("127.0.0.1:80"));
        let inf = samples
            .iter()
            .find(|s| {
                s.name == "weft_response_latency_seconds_bucket" && s.label("le") == Some("+Inf")
            })
            .unwrap();
        assert_eq!(inf.value, 1.0);
    }

    #[test]
    fn a_kept_traces_latency_is_its_buckets_exemplar_in_openmetrics_only() {
        let m = crate::Metrics::new("n1");
        let r = m
            .http
            .route(crate::Direction::Outbound, "world", "127.0.0.1:80");
        r.latency(std::time::Duration::from_millis(3));
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        r.latency_traced(std::time::Duration::from_millis(47), trace.into());
        let om = m.render_openmetrics();
        let found = exemplars(&om);
        assert_eq!(found.len(), 1, "{om}");
        let e = &found[0];
        assert_eq!(e.label("trace_id"), Some(trace));
        assert_eq!(e.value, 0.047);
        assert_eq!(e.sample.name, "weft_response_latency_seconds_bucket");
        assert_eq!(e.sample.label("le"), Some("0.048"));
        assert_eq!(e.sample.label("service"), Some("world"));
        assert!(e.timestamp.is_some_and(|t| t > 1.7e9), "{om}");
        // The classic text format has no exemplars, and its samples still parse.
        let text = m.render_text();
        assert!(!text.contains(trace), "{text}");
        assert!(exemplars(&text).is_empty());
        let bucket = parse(&text)
            .into_iter()
            .find(|s| s.name == e.sample.name && s.label("le") == Some("0.048"))
            .unwrap();
        assert_eq!(bucket.value, 2.0);
    }

    #[test]
    fn escaped_label_values_parse() {
        let s = parse(r#"x{a="q\"uote",b="back\\slash"} 2"#);
        assert_eq!(s[0].label("a"), Some("q\"uote"));
        assert_eq!(s[0].label("b"), Some("back\\slash"));
    }
}
