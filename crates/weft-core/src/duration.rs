//! Durations as people write them in config files and flags: `250ms`, `1.5s`, `2m`, `1h`;
//! and their serde forms, for a duration and an optional one.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// A duration from its written form; the error says what was expected.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 500ms, 1s, 2m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration {text:?}: unit must be ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// Whole seconds when exact, else milliseconds, with a fraction when the duration has one:
/// the form `parse` reads back (to within a nanosecond per 2^53), so a setting shorter
/// than a millisecond is never written as zero, which means "none" to a timeout.
pub fn format(d: &Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        format!("{}s", d.as_secs())
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        let fraction = format!("{:06}", nanos % 1_000_000);
        format!("{}.{}ms", d.as_millis(), fraction.trim_end_matches('0'))
    }
}

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(d))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// The same, for a setting that may be left out.
pub mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse(&text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert!(parse("5 parsecs").is_err());
    }

    /// Found by fuzzing (fuzz/regressions/duration/sub-millisecond-written-as-zero): 0.5 ms
    /// was written `0ms`, and read back as no duration at all.
    #[test]
    fn a_duration_written_reads_back_even_below_a_millisecond() {
        for text in ["0.5ms", "1.0005s", "250ms", "2m", "0.000001ms", "1.5s"] {
            let d = parse(text).unwrap();
            let written = format(&d);
            let back = parse(&written).unwrap();
            assert!(
                back.abs_diff(d) <= Duration::from_nanos(1),
                "{text} → {written}"
            );
        }
        assert_eq!(format(&Duration::from_micros(500)), "0.5ms");
        assert_eq!(
            format(&Duration::from_nanos(1_000_500_001)),
            "1000.500001ms"
        );
        assert_eq!(format(&Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(&Duration::from_secs(2)), "2s");
    }
}
