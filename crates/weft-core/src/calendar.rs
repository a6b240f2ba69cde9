//! Times as people and Kubernetes write them (UTC): `weft check`'s dates, the routes'
//! status times and the external metrics' timestamps, from one calendar conversion.

use std::time::SystemTime;

const DAY: u64 = 24 * 3600;

/// `YYYY-MM-DD`.
pub fn date(t: SystemTime) -> String {
    let (y, m, d) = civil(seconds(t) / DAY);
    format!("{y:04}-{m:02}-{d:02}")
}

/// RFC 3339 to the second, as Kubernetes writes times: `2026-12-02T17:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = seconds(t);
    let rem = secs % DAY;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        date(t),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Days since 1970-01-01 as (year, month, day): Howard Hinnant's days-to-civil.
fn civil(days: u64) -> (i64, i64, i64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_and_times_are_calendar_ones() {
        let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(date(at(0)), "1970-01-01");
        assert_eq!(date(at(951_782_400)), "2000-02-29");
        assert_eq!(date(at(1_796_169_600)), "2026-12-02");
        assert_eq!(rfc3339(at(1_796_256_000 + 3_723)), "2026-12-03T01:02:03Z");
    }
}
