use super::*;

#[test]
fn a_filter_reads_back_from_its_query() {
    let q = "service=world&direction=outbound&method=get&authority=World:7778&path=%2Fapi%20x&status=5xx&endpoint=127.0.0.3:7778&rate=50";
    let err = TapFilter::parse(q).unwrap_err();
    assert!(err.to_string().contains("path"), "{err}");
    let q = "service=world&direction=outbound&method=get&authority=World:7778&path=%2Fapi&status=5xx&endpoint=127.0.0.3:7778&rate=50&events=end";
    let f = TapFilter::parse(q).unwrap();
    assert_eq!(f.service.as_deref(), Some("world"));
    assert_eq!(f.method.as_deref(), Some("GET"));
    assert_eq!(f.authority.as_deref(), Some("world:7778"));
    assert_eq!(f.path_prefix.as_deref(), Some("/api"));
    assert_eq!(f.status, Some(StatusFilter::Class(5)));
    assert_eq!(f.rate, 50);
    assert!(f.ends_only);
    assert_eq!(f.events_per_request(), 1);
    assert_eq!(TapFilter::parse(&f.to_query()).unwrap(), f);
    assert_eq!(TapFilter::parse("").unwrap().rate, DEFAULT_RATE);
}

#[test]
fn a_filter_that_cannot_match_is_refused_with_its_reason() {
    for (q, says) in [
        ("path=api", "starts with /"),
        ("status=6xx", "1xx"),
        ("direction=sideways", "outbound or inbound"),
        ("rate=0", "1 to 10000"),
        ("rate=100000", "1 to 10000"),
        ("endpoint=world", "IP:port"),
        ("service=a/b", "service name"),
        ("method=G%20T", "HTTP method"),
        ("colour=red", "unknown tap parameter"),
        ("service=a&service=b", "twice"),
        ("events=some", "all or end"),
        ("path=%zz", "percent-encoded"),
    ] {
        let err = TapFilter::parse(q).unwrap_err().to_string();
        assert!(err.contains(says), "{q}: {err}");
    }
}

#[test]
fn request_and_answer_match_separately() {
    let f = TapFilter::parse("service=world&path=/a&status=failure").unwrap();
    let d = TapDirection::Outbound;
    assert!(f.matches_request(d, "world", "GET", "world", "/a/b"));
    assert!(!f.matches_request(d, "world", "GET", "world", "/b"));
    assert!(!f.matches_request(d, "hello", "GET", "hello", "/a"));
    assert!(f.waits_for_answer());
    assert!(f.matches_answer(Some(503), true, None));
    assert!(f.matches_answer(None, true, None));
    assert!(!f.matches_answer(Some(200), false, None));
    let f = TapFilter::parse("status=2xx").unwrap();
    assert!(f.matches_answer(Some(204), false, None));
    assert!(!f.matches_answer(None, true, None));
}

#[test]
fn an_event_line_round_trips() {
    let e = TapEvent {
        kind: Some(EventKind::End),
        proxy: "node-a".into(),
        id: 7,
        direction: Some(TapDirection::Inbound),
        service: "world".into(),
        status: Some(200),
        request_headers: vec![("authorization".into(), None)],
        success: Some(true),
        ..TapEvent::default()
    };
    let line = serde_json::to_string(&e).unwrap();
    assert!(line.contains(r#""type":"end""#), "{line}");
    assert!(!line.contains("latency_us"), "{line}");
    assert_eq!(serde_json::from_str::<TapEvent>(&line).unwrap(), e);
}
