use super::*;

// The W3C spec's own example ids.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";
const CHILD: &str = "1122334455667788";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for &(name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        map.append(name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn extract_from(pairs: &[(&str, &str)]) -> Option<Incoming> {
    extract(&headers(pairs))
}

fn ids() -> (TraceId, SpanId) {
    let trace = TraceId::parse_hex(TRACE.as_bytes()).unwrap();
    (trace, SpanId::parse_hex(SPAN.as_bytes()).unwrap())
}

fn child() -> SpanId {
    SpanId::parse_hex(CHILD.as_bytes()).unwrap()
}

#[test]
fn ids_are_lowercase_hex_and_never_zero() {
    let (trace, span) = ids();
    assert_eq!(
        TraceId::from_u128(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        Some(trace)
    );
    assert_eq!(SpanId::from_u64(0x00f0_67aa_0ba9_02b7), Some(span));
    assert_eq!(trace.hex(), TRACE);
    assert_eq!(span.to_string(), SPAN);
    assert_eq!(format!("{span:>18}"), format!("  {SPAN}"));
    assert_eq!(TraceId::from_u128(0), None);
    assert_eq!(SpanId::from_u64(0), None);
    assert_eq!(TraceId::parse_hex(&[b'0'; 32]), None);
    assert_eq!(TraceId::parse_hex(TRACE.to_uppercase().as_bytes()), None);
    assert_eq!(SpanId::parse_hex(&SPAN.as_bytes()[1..]), None);
    let narrow = TraceId::from_u128(0xa3ce_929d_0e0e_4736).unwrap();
    assert_eq!(
        TraceId::parse_b3(b"a3ce929d0e0e4736"),
        Some((narrow, false))
    );
    assert_eq!(TraceId::parse_b3(TRACE.as_bytes()), Some((trace, true)));
    assert_eq!(TraceId::parse_b3(&TRACE.as_bytes()[1..]), None);
}

#[test]
fn a_w3c_context_is_read_and_a_child_written_onward() {
    let traceparent = format!("00-{TRACE}-{SPAN}-01");
    let state = "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE";
    let mut map = headers(&[("traceparent", &traceparent), ("tracestate", state)]);
    let incoming = extract(&map).unwrap();
    let (trace, span) = ids();
    let want = Incoming {
        format: Format::W3c,
        parent: Some((trace, span)),
        sampled: Some(true),
        tracestate: Some(HeaderValue::from_static(state)),
        wide: true,
    };
    assert_eq!(incoming, want);

    let tracestate = incoming.tracestate.as_ref();
    inject(
        &mut map,
        incoming.format,
        trace,
        child(),
        Some(span),
        true,
        tracestate,
        true,
    );
    assert_eq!(map["traceparent"], format!("00-{TRACE}-{CHILD}-01"));
    let again = extract(&map).unwrap();
    assert_eq!(again.parent, Some((trace, child())));
    assert_eq!(again.sampled, Some(true));
    assert_eq!(again.tracestate, incoming.tracestate);

    inject(
        &mut map,
        Format::W3c,
        trace,
        child(),
        None,
        false,
        None,
        true,
    );
    assert_eq!(map["traceparent"], format!("00-{TRACE}-{CHILD}-00"));
    assert!(!map.contains_key(TRACESTATE));

    // Only the sampled bit of the flags is read.
    for (flags, sampled) in [("03", true), ("02", false), ("00", false)] {
        let traceparent = format!("00-{TRACE}-{SPAN}-{flags}");
        let incoming = extract_from(&[("traceparent", &traceparent)]).unwrap();
        assert_eq!(incoming.sampled, Some(sampled), "{flags}");
    }
}

#[test]
fn a_malformed_traceparent_is_ignored() {
    let zeros = "0".repeat(32);
    let bad = [
        format!("ff-{TRACE}-{SPAN}-01"),
        format!("0-{TRACE}-{SPAN}-01"),
        format!("0g-{TRACE}-{SPAN}-01"),
        format!("00-{TRACE}-{SPAN}-01-"),
        format!("00-{TRACE}-{SPAN}-01-extra"),
        format!("00-{TRACE}-{SPAN}-1"),
        format!("00-{TRACE}-{SPAN}0-1"),
        format!("00-{TRACE}0-{SPAN}-01"),
        format!("00_{TRACE}-{SPAN}-01"),
        format!("00-{TRACE}-{SPAN}-0x"),
        format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
        format!("00-{TRACE}-{}-01", SPAN.to_uppercase()),
        format!("00-{zeros}-{SPAN}-01"),
        format!("00-{TRACE}-{}-01", &zeros[..16]),
        format!("01-{TRACE}-{SPAN}-01x"),
        String::new(),
    ];
    for value in &bad {
        assert_eq!(extract_from(&[("traceparent", value)]), None, "{value}");
    }
    let good = format!("00-{TRACE}-{SPAN}-01");
    assert!(extract_from(&[("traceparent", &good)]).is_some());
    assert_eq!(
        extract_from(&[("traceparent", &good), ("traceparent", &good)]),
        None
    );
}

#[test]
fn a_later_traceparent_version_is_read_as_00() {
    for value in [
        format!("01-{TRACE}-{SPAN}-01"),
        format!("cc-{TRACE}-{SPAN}-01-what-the-future-adds"),
    ] {
        let incoming = extract_from(&[("traceparent", &value)]).unwrap();
        assert_eq!(incoming.parent, Some(ids()), "{value}");
        assert_eq!(incoming.sampled, Some(true), "{value}");
    }
}

#[test]
fn a_long_or_odd_tracestate_is_dropped_and_the_traceparent_kept() {
    let traceparent = format!("00-{TRACE}-{SPAN}-00");
    let longest = format!("k={}", "v".repeat(MAX_TRACESTATE_BYTES - 2));
    let incoming = extract_from(&[("traceparent", &traceparent), ("tracestate", &longest)]);
    assert_eq!(incoming.unwrap().tracestate.unwrap(), longest);

    let too_long = format!("{longest}v");
    let incoming = extract_from(&[("traceparent", &traceparent), ("tracestate", &too_long)]);
    let incoming = incoming.unwrap();
    assert_eq!(incoming.parent, Some(ids()));
    assert_eq!(incoming.sampled, Some(false));
    assert_eq!(incoming.tracestate, None);

    let two_lines = [
        ("traceparent", traceparent.as_str()),
        ("tracestate", "a=1"),
        ("tracestate", "b=2"),
    ];
    // Several lines are one list: joined, within the same bound.
    let joined = extract_from(&two_lines).unwrap().tracestate.unwrap();
    assert_eq!(joined, "a=1,b=2");
    let half = format!("k={}", "v".repeat(MAX_TRACESTATE_BYTES / 2));
    let too_long_joined = [
        ("traceparent", traceparent.as_str()),
        ("tracestate", half.as_str()),
        ("tracestate", half.as_str()),
    ];
    assert_eq!(extract_from(&too_long_joined).unwrap().tracestate, None);
    let empty = [("traceparent", traceparent.as_str()), ("tracestate", "")];
    assert_eq!(extract_from(&empty).unwrap().tracestate, None);
    let mut map = headers(&[("traceparent", &traceparent)]);
    map.insert(TRACESTATE, HeaderValue::from_bytes(b"a=\xff").unwrap());
    assert_eq!(extract(&map).unwrap().tracestate, None);

    // Without a traceparent, a tracestate is nothing to join.
    assert_eq!(extract_from(&[("tracestate", "a=1")]), None);
}

#[test]
fn single_b3_is_read_in_all_its_shapes() {
    let parent = Some(ids());
    let cases = [
        (format!("{TRACE}-{SPAN}"), parent, None),
        (format!("{TRACE}-{SPAN}-1"), parent, Some(true)),
        (format!("{TRACE}-{SPAN}-d"), parent, Some(true)),
        (format!("{TRACE}-{SPAN}-0-{CHILD}"), parent, Some(false)),
        ("0".to_string(), None, Some(false)),
        ("1".to_string(), None, Some(true)),
        ("d".to_string(), None, Some(true)),
    ];
    for (value, parent, sampled) in cases {
        let want = Incoming {
            format: Format::B3Single,
            parent,
            sampled,
            tracestate: None,
            wide: true,
        };
        assert_eq!(extract_from(&[("b3", &value)]), Some(want), "{value}");
    }

    let incoming = extract_from(&[("b3", &format!("a3ce929d0e0e4736-{SPAN}-1"))]).unwrap();
    let narrow = TraceId::from_u128(0xa3ce_929d_0e0e_4736).unwrap();
    assert_eq!(incoming.parent, Some((narrow, ids().1)));
    assert!(!incoming.wide);
}

#[test]
fn a_malformed_b3_is_ignored() {
    let zeros = "0".repeat(32);
    let bad = [
        TRACE.to_string(),
        format!("{TRACE}-"),
        format!("{TRACE}-{SPAN}-"),
        format!("{TRACE}-{SPAN}-2"),
        format!("{TRACE}-{SPAN}-true"),
        format!("{TRACE}-{SPAN}-D"),
        format!("{TRACE}-{SPAN}-1-"),
        format!("{TRACE}-{SPAN}-1-{CHILD}-1"),
        format!("{TRACE}-{SPAN}-1-{}", &CHILD[1..]),
        format!("{TRACE}-{SPAN}-1-{}", &zeros[..16]),
        format!("{TRACE}-{}", &SPAN[1..]),
        format!("{TRACE}-{SPAN}0"),
        format!("{TRACE}0-{SPAN}"),
        format!("{}-{SPAN}", &TRACE[1..]),
        format!("{}-{SPAN}", &TRACE[..20]),
        format!("{}-{SPAN}", TRACE.to_uppercase()),
        format!("{zeros}-{SPAN}"),
        format!("{}-{SPAN}", &zeros[..16]),
        format!("{TRACE}-{}", &zeros[..16]),
        "2".to_string(),
        "true".to_string(),
        "-".to_string(),
        String::new(),
    ];
    for value in &bad {
        assert_eq!(extract_from(&[("b3", value)]), None, "{value}");
    }
}

#[test]
fn multi_b3_with_a_64_bit_trace_id_is_written_back_as_64_bits() {
    let mut map = headers(&[
        ("x-b3-traceid", "a3ce929d0e0e4736"),
        ("x-b3-spanid", SPAN),
        ("x-b3-parentspanid", CHILD),
        ("x-b3-sampled", "1"),
    ]);
    let incoming = extract(&map).unwrap();
    let trace = TraceId::from_u128(0xa3ce_929d_0e0e_4736).unwrap();
    let span = ids().1;
    let want = Incoming {
        format: Format::B3Multi,
        parent: Some((trace, span)),
        sampled: Some(true),
        tracestate: None,
        wide: false,
    };
    assert_eq!(incoming, want);
    assert_eq!(trace.hex(), "0000000000000000a3ce929d0e0e4736");

    inject(
        &mut map,
        Format::B3Multi,
        trace,
        child(),
        Some(span),
        true,
        None,
        false,
    );
    assert_eq!(map["x-b3-traceid"], "a3ce929d0e0e4736");
    assert_eq!(map["x-b3-spanid"], CHILD);
    assert_eq!(map["x-b3-parentspanid"], SPAN);
    assert_eq!(map["x-b3-sampled"], "1");
    assert_eq!(extract(&map).unwrap().parent, Some((trace, child())));

    inject(
        &mut map,
        Format::B3Multi,
        trace,
        child(),
        None,
        false,
        None,
        true,
    );
    assert_eq!(map["x-b3-traceid"], "0000000000000000a3ce929d0e0e4736");
    assert!(!map.contains_key(X_B3_PARENTSPANID));
    assert_eq!(map["x-b3-sampled"], "0");

    // A 128-bit id is never cut to 64 bits.
    let (wide, _) = ids();
    inject(
        &mut map,
        Format::B3Single,
        wide,
        child(),
        None,
        true,
        None,
        false,
    );
    assert_eq!(map["b3"], format!("{TRACE}-{CHILD}-1"));
}

#[test]
fn multi_b3_sampling_and_debug() {
    let decision = |pairs: &[(&str, &str)]| extract_from(pairs).map(|i| (i.parent, i.sampled));
    assert_eq!(
        decision(&[("x-b3-sampled", "0")]),
        Some((None, Some(false)))
    );
    assert_eq!(
        decision(&[("x-b3-sampled", "true")]),
        Some((None, Some(true)))
    );
    assert_eq!(
        decision(&[("x-b3-sampled", "false")]),
        Some((None, Some(false)))
    );
    assert_eq!(decision(&[("x-b3-flags", "1")]), Some((None, Some(true))));
    assert_eq!(decision(&[("x-b3-sampled", "yes")]), None);
    assert_eq!(
        decision(&[("x-b3-sampled", "1"), ("x-b3-sampled", "1")]),
        None
    );
    assert_eq!(decision(&[("x-b3-flags", "0")]), None);
    assert_eq!(decision(&[("x-b3-parentspanid", SPAN)]), None);

    let parent = Some(ids());
    let ids = [("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)];
    assert_eq!(decision(&ids), Some((parent, None)));
    let debug = [ids[0], ids[1], ("x-b3-sampled", "0"), ("x-b3-flags", "1")];
    assert_eq!(decision(&debug), Some((parent, Some(true))));
    let other_flags = [ids[0], ids[1], ("x-b3-flags", "2")];
    assert_eq!(decision(&other_flags), Some((parent, None)));

    // Half a parent, or a malformed one, is no context, whatever the decision.
    assert_eq!(decision(&[ids[0], ("x-b3-sampled", "1")]), None);
    assert_eq!(decision(&[ids[1], ("x-b3-sampled", "1")]), None);
    let short = [ids[0], ("x-b3-spanid", &SPAN[1..]), ("x-b3-sampled", "1")];
    assert_eq!(decision(&short), None);
    let repeated = [ids[0], ids[0], ids[1]];
    assert_eq!(decision(&repeated), None);
    assert_eq!(decision(&[]), None);
}

#[test]
fn w3c_comes_before_single_b3_and_single_before_multi() {
    let traceparent = format!("00-{TRACE}-{SPAN}-01");
    let b3 = format!("a3ce929d0e0e4736-{CHILD}-0");
    let all = [
        ("traceparent", traceparent.as_str()),
        ("b3", b3.as_str()),
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", SPAN),
    ];
    assert_eq!(extract_from(&all).unwrap().format, Format::W3c);
    assert_eq!(extract_from(&all[1..]).unwrap().format, Format::B3Single);
    assert_eq!(extract_from(&all[2..]).unwrap().format, Format::B3Multi);

    // A malformed context gives way to the next format.
    let bad_first = [("traceparent", "00-nope"), ("b3", b3.as_str())];
    assert_eq!(extract_from(&bad_first).unwrap().format, Format::B3Single);
    let bad_b3 = [("b3", "nope"), all[2], all[3]];
    assert_eq!(extract_from(&bad_b3).unwrap().format, Format::B3Multi);
}

#[test]
fn inject_replaces_every_format_with_one() {
    let traceparent = format!("00-{TRACE}-{SPAN}-01");
    let mut map = headers(&[
        ("traceparent", &traceparent),
        ("tracestate", "a=1"),
        ("b3", "0"),
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", SPAN),
        ("x-b3-parentspanid", SPAN),
        ("x-b3-sampled", "1"),
        ("x-b3-flags", "1"),
        ("x-request-id", "kept"),
    ]);
    let (trace, span) = ids();
    inject(
        &mut map,
        Format::B3Single,
        trace,
        child(),
        Some(span),
        false,
        None,
        true,
    );
    assert_eq!(map.len(), 2);
    assert_eq!(map["b3"], format!("{TRACE}-{CHILD}-0-{SPAN}"));
    assert_eq!(map["x-request-id"], "kept");

    let state = HeaderValue::from_static("a=1");
    inject(
        &mut map,
        Format::W3c,
        trace,
        child(),
        Some(span),
        true,
        Some(&state),
        true,
    );
    assert_eq!(map.len(), 3);
    assert_eq!(map["tracestate"], "a=1");
    assert!(!map.contains_key(B3));

    remove(&mut map);
    assert_eq!(map.len(), 1);
}
