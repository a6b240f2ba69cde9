//! The mesh's own headers, which a proxy reads from apps and peers: the route a peer chose
//! (`weft-dst-service`), the deadline (`weft-ctx-timeout`, `weft-ctx-deadline`), the staging
//! override and hop count, and trace context (W3C, B3).

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weft_core::context::{self, MAX_OVERRIDE_BYTES, MAX_OVERRIDE_ENTRIES};
use weft_core::headers::{self, ENDPOINT_PARAM, WEFT_CTX_DEADLINE, WEFT_CTX_TIMEOUT};
use weft_core::trace::{self, SpanId, TraceId};
use weft_core::NameRules;

use crate::headers_from;

/// `weft-dst-service`: what it names are trimmed pieces of the value, and written back the
/// way an outbound proxy writes them, they read the same.
pub fn dst_service(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let Some((service, endpoint)) = headers::dst_service(value) else {
        return;
    };
    for part in [Some(service), endpoint].into_iter().flatten() {
        let at = part.as_ptr() as usize - value.as_ptr() as usize;
        assert!(at + part.len() <= value.len(), "a piece of the value");
        assert_eq!(part, part.trim_ascii(), "trimmed");
    }
    assert!(!service.contains(';'));
    let written = match endpoint {
        Some(endpoint) => format!("{service};{ENDPOINT_PARAM}={endpoint}"),
        None => service.to_string(),
    };
    assert_eq!(
        headers::dst_service(&written),
        Some((service, endpoint)),
        "{written:?}"
    );
}

/// The deadline headers as `name: value` lines: the time left is the tightest of every
/// well-formed value, read here one header at a time as a second opinion, and a proxy can
/// always wait that long without its clock arithmetic overflowing.
pub fn ctx_deadline(data: &[u8]) {
    let headers = headers_from(data);
    let now = UNIX_EPOCH + Duration::from_secs(1_767_312_000);
    let left = context::time_left(&headers, now);
    let number = |v: &http::HeaderValue| v.to_str().ok()?.trim().parse::<u64>().ok();
    let timeouts = headers
        .get_all(WEFT_CTX_TIMEOUT)
        .iter()
        .filter_map(number)
        .map(Duration::from_millis);
    let deadlines = headers
        .get_all(WEFT_CTX_DEADLINE)
        .iter()
        .filter_map(number)
        .map(|micros| {
            let at = UNIX_EPOCH + Duration::from_micros(micros);
            at.duration_since(now).unwrap_or(Duration::ZERO)
        });
    assert_eq!(left, timeouts.chain(deadlines).min());
    if let Some(left) = left {
        let _ = std::time::Instant::now() + left.min(weft_core::policy::MAX_DURATION);
        let _ = SystemTime::now() + left.min(weft_core::policy::MAX_DURATION);
    }
}

/// `weft-ctx-override`: a value accepted is bounded, names services only, never an
/// address, and the rewrite looked up for a service is the first one for it.
pub fn ctx_override(data: &[u8]) {
    let names = NameRules::default();
    let Ok(rewrites) = context::parse_override(data, &names) else {
        return;
    };
    assert!(data.len() <= MAX_OVERRIDE_BYTES);
    assert!(!rewrites.is_empty() && rewrites.len() <= MAX_OVERRIDE_ENTRIES);
    for (from, to) in &rewrites {
        for name in [from, to] {
            assert!(!name.is_empty());
            assert!(!name.contains(':') && !name.contains('/'), "{name:?}");
            assert!(name.parse::<IpAddr>().is_err(), "{name:?}");
            // What resolvers read as an IPv4 address in one of its short forms (`10.1`).
            assert!(
                !name.bytes().all(|b| b.is_ascii_digit() || b == b'.'),
                "{name:?}"
            );
        }
        let first = rewrites.iter().find(|(f, _)| f == from).map(|(_, t)| t);
        assert_eq!(
            context::override_for(data, &names, from),
            Ok(first.cloned())
        );
    }
}

/// `weft-ctx-hops`: digits read as a number that saturates at `u32::MAX`; anything else is
/// no count.
pub fn ctx_hops(data: &[u8]) {
    let expected = (!data.is_empty() && data.iter().all(u8::is_ascii_digit)).then(|| {
        let digits = std::str::from_utf8(data).expect("digits");
        let significant = digits.trim_start_matches('0');
        if significant.len() > 10 {
            u32::MAX
        } else {
            significant
                .parse::<u64>()
                .map_or(0, |n| n.min(u64::from(u32::MAX)) as u32)
        }
    });
    assert_eq!(context::parse_hops(data), expected);
}

/// Trace headers as `name: value` lines: a context read, written onward as a child in the
/// same format, reads back with the same trace, the new span, the decision and (W3C) the
/// tracestate; and removing trace headers leaves none to read.
pub fn trace_context(data: &[u8]) {
    let mut headers = headers_from(data);
    if let Some(incoming) = trace::extract(&headers) {
        let new_trace = TraceId::from_u128(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736);
        let trace = incoming
            .parent
            .map(|(trace, _)| trace)
            .or(new_trace)
            .expect("an id");
        let span = SpanId::from_u64(0x00f0_67aa_0ba9_02b7).expect("an id");
        let sampled = incoming.sampled.unwrap_or(true);
        let mut onward = headers.clone();
        trace::inject(
            &mut onward,
            incoming.format,
            trace,
            span,
            incoming.parent.map(|(_, span)| span),
            sampled,
            incoming.tracestate.as_ref(),
            incoming.wide,
        );
        let out = trace::extract(&onward).expect("a context written reads back");
        assert_eq!(out.format, incoming.format);
        assert_eq!(out.parent, Some((trace, span)));
        assert_eq!(out.sampled, Some(sampled));
        assert_eq!(out.wide, incoming.wide || trace.0[..8] != [0; 8]);
        if incoming.format == trace::Format::W3c {
            assert_eq!(out.tracestate, incoming.tracestate);
        }
    }
    trace::remove(&mut headers);
    assert!(trace::extract(&headers).is_none());
    for name in [
        trace::TRACEPARENT,
        trace::TRACESTATE,
        trace::B3,
        trace::X_B3_TRACEID,
        trace::X_B3_SPANID,
        trace::X_B3_PARENTSPANID,
        trace::X_B3_SAMPLED,
        trace::X_B3_FLAGS,
    ] {
        assert!(!headers.contains_key(name));
    }
}
