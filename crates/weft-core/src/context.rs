//! The `weft-ctx-*` headers a call carries through every hop whose app forwards them, as
//! the proxies read them: the staging override (`world => world-v2`), the hop count that
//! stops a request looping through the mesh, and the time its deadline leaves. Parsing
//! only; who is trusted, and what is done, is the proxy's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};

use crate::headers::{WEFT_CTX_DEADLINE, WEFT_CTX_TIMEOUT};
use crate::name::NameRules;

/// The longest `weft-ctx-override` value read; a longer one is refused whole.
pub const MAX_OVERRIDE_BYTES: usize = 512;
/// The most rewrites one override carries.
pub const MAX_OVERRIDE_ENTRIES: usize = 8;
/// The proxy hops a request may make by default before it is taken for a loop.
pub const DEFAULT_MAX_HOPS: u32 = 16;

/// Why a `weft-ctx-override` value was refused: the `400`'s body says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("weft-ctx-override is longer than {MAX_OVERRIDE_BYTES} bytes")]
    TooLong,
    #[error("weft-ctx-override has more than {MAX_OVERRIDE_ENTRIES} rewrites")]
    TooMany,
    #[error("weft-ctx-override is not `SERVICE => SERVICE[; ...]`")]
    Syntax,
    /// An override names services only: an address (IP, port) would let a caller send the
    /// mesh's traffic anywhere.
    #[error("weft-ctx-override may name services only, not {0:?}")]
    NotAService(String),
}

/// The service `value` sends `service`'s requests to instead, when one of its rewrites is
/// for `service`; every rewrite is checked whether it applies or not, so a malformed header
/// is refused at the first proxy that reads it rather than at some later hop.
pub fn override_for(
    value: &[u8],
    names: &NameRules,
    service: &str,
) -> Result<Option<String>, OverrideError> {
    let mut found = None;
    for (from, to) in parse_override(value, names)? {
        if found.is_none() && from == service {
            found = Some(to);
        }
    }
    Ok(found)
}

/// Every rewrite of a `weft-ctx-override` value, in order, names made canonical
/// (`World.default.svc.cluster.local` → `world`).
pub fn parse_override(
    value: &[u8],
    names: &NameRules,
) -> Result<Vec<(String, String)>, OverrideError> {
    if value.len() > MAX_OVERRIDE_BYTES {
        return Err(OverrideError::TooLong);
    }
    let text = std::str::from_utf8(value).map_err(|_| OverrideError::Syntax)?;
    let mut out = Vec::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        if out.len() == MAX_OVERRIDE_ENTRIES {
            return Err(OverrideError::TooMany);
        }
        let (from, to) = entry.split_once("=>").ok_or(OverrideError::Syntax)?;
        out.push((service(from, names)?, service(to, names)?));
    }
    if out.is_empty() {
        return Err(OverrideError::Syntax);
    }
    Ok(out)
}

fn service(text: &str, names: &NameRules) -> Result<String, OverrideError> {
    let text = text.trim();
    if text.is_empty() || text.contains("=>") {
        return Err(OverrideError::Syntax);
    }
    let refused = || OverrideError::NotAService(text.chars().take(64).collect());
    if is_address(text) {
        return Err(refused());
    }
    // Checked again once the cluster's suffix is cut: `1.2.3.4.default` names `1.2.3.4`.
    match names.service_name(text) {
        Some(name) if !is_address(&name) => Ok(name.into_owned()),
        _ => Err(refused()),
    }
}

/// An IP address, a port, a path, or digits and dots (an IPv4 address in a short form a
/// resolver reads, `10.1`).
fn is_address(text: &str) -> bool {
    text.contains(':')
        || text.contains('/')
        || text.parse::<std::net::IpAddr>().is_ok()
        || text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// The hops a request has made, from `weft-ctx-hops`: `None` when the value is not a
/// number. A number too large to hold reads as `u32::MAX`, which is past any limit.
pub fn parse_hops(value: &[u8]) -> Option<u32> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u32, |n, d| {
        n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
    }))
}

/// The time a caller leaves its request as of `now`, from whichever form it sent: the time
/// left (`weft-ctx-timeout`, ms) or the deadline (`weft-ctx-deadline`, Unix µs); the
/// tighter, given both. A value that is not a number is ignored; a deadline already passed
/// leaves zero. Not capped: the caller bounds what it waits.
pub fn time_left(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let number = |v: &HeaderValue| v.to_str().ok()?.trim().parse::<u64>().ok();
    let mut left: Option<Duration> = None;
    let mut tighten = |d: Duration| left = Some(left.map_or(d, |l| l.min(d)));
    // One pass: most requests carry neither, and a lookup each would hash both names.
    // Compared as strings: a length differs first, where `HeaderName`s call memcmp.
    for (name, value) in headers {
        let name = name.as_str();
        if !name.starts_with("weft-ctx-") {
            continue;
        }
        if name == WEFT_CTX_TIMEOUT.as_str() {
            if let Some(ms) = number(value) {
                tighten(Duration::from_millis(ms));
            }
        } else if name == WEFT_CTX_DEADLINE.as_str() {
            let Some(micros) = number(value) else {
                continue;
            };
            let Some(wall) = UNIX_EPOCH.checked_add(Duration::from_micros(micros)) else {
                continue;
            };
            tighten(wall.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> NameRules {
        NameRules::default()
    }

    #[test]
    fn an_override_rewrites_services_by_name() {
        let v = b"world => world-v2; hello=>hello-staging";
        assert_eq!(
            parse_override(v, &names()).unwrap(),
            [
                ("world".to_string(), "world-v2".to_string()),
                ("hello".to_string(), "hello-staging".to_string())
            ]
        );
        assert_eq!(
            override_for(
                b"World.default.svc.cluster.local => world-v2",
                &names(),
                "world"
            ),
            Ok(Some("world-v2".into()))
        );
        assert_eq!(override_for(v, &names(), "other"), Ok(None));
    }

    #[test]
    fn an_override_names_no_address_and_stays_small() {
        for bad in [
            &b"world => 10.0.0.1"[..],
            b"world => evil:443",
            b"world => http://evil",
            b"world => [::1]",
        ] {
            assert!(
                matches!(
                    parse_override(bad, &names()),
                    Err(OverrideError::NotAService(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        for bad in [
            &b""[..],
            b";",
            b"world",
            b"world =>",
            b"=> world",
            b"a => b => c",
        ] {
            assert_eq!(parse_override(bad, &names()), Err(OverrideError::Syntax));
        }
        let many = "a => b;".repeat(MAX_OVERRIDE_ENTRIES + 1);
        assert_eq!(
            parse_override(many.as_bytes(), &names()),
            Err(OverrideError::TooMany)
        );
        let long = format!("world => {}", "w".repeat(MAX_OVERRIDE_BYTES));
        assert_eq!(
            parse_override(long.as_bytes(), &names()),
            Err(OverrideError::TooLong)
        );
        // A malformed rewrite is refused even when another one applies.
        assert!(override_for(b"world => world-v2; x", &names(), "world").is_err());
    }

    /// Found by fuzzing (fuzz/regressions/ctx_override/an-address-once-its-suffix-is-cut):
    /// a name that is an address once the cluster's suffix is cut passed as a service.
    #[test]
    fn an_override_names_no_address_once_its_suffix_is_cut() {
        for bad in [
            &b"a=>1.default"[..],
            b"a => 10.0.0.1.default.svc.cluster.local",
        ] {
            assert!(
                matches!(
                    parse_override(bad, &names()),
                    Err(OverrideError::NotAService(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A name with digits in it is still a name.
        assert!(parse_override(b"a => v1.default", &names()).is_ok());
    }

    #[test]
    fn hops_are_a_number_and_saturate() {
        assert_eq!(parse_hops(b"0"), Some(0));
        assert_eq!(parse_hops(b"16"), Some(16));
        assert_eq!(parse_hops(b"99999999999999999999"), Some(u32::MAX));
        assert_eq!(parse_hops(b""), None);
        assert_eq!(parse_hops(b"-1"), None);
        assert_eq!(parse_hops(b"1 "), None);
    }

    #[test]
    fn the_time_left_is_the_tighter_of_both_forms_and_ignores_what_is_not_a_number() {
        let now = UNIX_EPOCH + Duration::from_secs(1_767_312_000);
        let headers = |lines: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (name, value) in lines {
                h.append(*name, HeaderValue::from_static(value));
            }
            h
        };
        assert_eq!(time_left(&headers(&[]), now), None);
        let timeout = headers(&[("weft-ctx-timeout", " 250 ")]);
        assert_eq!(time_left(&timeout, now), Some(Duration::from_millis(250)));
        // 1 s after `now`, in µs.
        let deadline = headers(&[("weft-ctx-deadline", "1767312001000000")]);
        assert_eq!(time_left(&deadline, now), Some(Duration::from_secs(1)));
        let both = headers(&[
            ("weft-ctx-deadline", "1767312001000000"),
            ("weft-ctx-timeout", "100"),
            ("weft-ctx-timeout", "5000"),
        ]);
        assert_eq!(time_left(&both, now), Some(Duration::from_millis(100)));
        let passed = headers(&[("weft-ctx-deadline", "1")]);
        assert_eq!(time_left(&passed, now), Some(Duration::ZERO));
        let junk = headers(&[
            ("weft-ctx-timeout", "-1"),
            ("weft-ctx-timeout", "1e3"),
            ("weft-ctx-deadline", "18446744073709551616"),
        ]);
        assert_eq!(time_left(&junk, now), None);
    }
}
