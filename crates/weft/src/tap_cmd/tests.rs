use weft_core::tap::TapDirection;

use super::*;

/// One request's three events as a proxy sends them, each repeating the request.
fn events() -> [TapEvent; 3] {
    let request = TapEvent {
        proxy: "node-a".into(),
        id: 17,
        unix_us: 1_700_000_000_000_000,
        direction: Some(TapDirection::Outbound),
        service: "world".into(),
        method: "GET".into(),
        authority: "world".into(),
        path: "/hello".into(),
        source: Some("127.0.0.2:4321".parse().unwrap()),
        source_name: Some("hello-7d9f".into()),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        ..TapEvent::default()
    };
    let start = TapEvent {
        kind: Some(EventKind::Start),
        request_headers: vec![
            ("user-agent".into(), Some("curl/8.5 (x)".into())),
            ("cookie".into(), None),
        ],
        ..request.clone()
    };
    let headers = TapEvent {
        kind: Some(EventKind::Headers),
        status: Some(200),
        endpoint: Some("127.0.0.4:7778".parse().unwrap()),
        retries: Some(0),
        latency_us: Some(1234),
        response_headers: vec![("content-type".into(), Some("text/plain".into()))],
        ..request.clone()
    };
    let end = TapEvent {
        kind: Some(EventKind::End),
        status: Some(200),
        endpoint: Some("127.0.0.4:7778".parse().unwrap()),
        retries: Some(0),
        latency_us: Some(1234),
        duration_us: Some(2345),
        bytes: Some(26),
        success: Some(true),
        grpc_status: Some(0),
        ..request
    };
    [start, headers, end]
}

fn lines(output: Output) -> Vec<String> {
    events()
        .iter()
        .map(|e| line(e, output).expect("a request event has a line"))
        .collect()
}

#[test]
fn plain_lines_show_the_request_then_its_answer_then_its_end() {
    assert_eq!(
        lines(Output::Events),
        [
            "req id=node-a:17 dir=outbound svc=world :method=GET :authority=world :path=/hello src=127.0.0.2:4321",
            "rsp id=node-a:17 :status=200 latency=1234µs endpoint=127.0.0.4:7778 retries=0",
            "end id=node-a:17 :status=200 duration=2345µs bytes=26 success=true grpc-status=0",
        ]
    );
}

#[test]
fn wide_lines_each_stand_alone_and_show_names_traces_and_headers() {
    let request = "dir=outbound svc=world :method=GET :authority=world :path=/hello \
                   src=127.0.0.2:4321 src-name=hello-7d9f trace=4bf92f3577b34da6a3ce929d0e0e4736";
    assert_eq!(
        lines(Output::Wide),
        [
            format!("req id=node-a:17 {request} header:user-agent=\"curl/8.5 (x)\" header:cookie"),
            format!(
                "rsp id=node-a:17 {request} :status=200 latency=1234µs endpoint=127.0.0.4:7778 \
                 retries=0 header:content-type=text/plain"
            ),
            format!(
                "end id=node-a:17 {request} :status=200 latency=1234µs endpoint=127.0.0.4:7778 \
                 retries=0 duration=2345µs bytes=26 success=true grpc-status=0"
            ),
        ]
    );
}

#[test]
fn json_lines_are_the_events_as_sent() {
    for (l, e) in lines(Output::Json).iter().zip(events()) {
        assert!(!l.contains('\n'));
        let back: TapEvent = serde_json::from_str(l).unwrap();
        assert_eq!(back, e);
    }
    assert!(lines(Output::Json)[2].starts_with(r#"{"type":"end","proxy":"node-a","id":17"#));
}

#[test]
fn a_given_up_request_says_why_and_omits_what_it_never_had() {
    let end = TapEvent {
        kind: Some(EventKind::End),
        proxy: "node-b".into(),
        id: 3,
        duration_us: Some(30_000_000),
        success: Some(false),
        error: Some("connect timeout".into()),
        ..TapEvent::default()
    };
    assert_eq!(
        line(&end, Output::Events).unwrap(),
        "end id=node-b:3 duration=30000000µs success=false error=\"connect timeout\""
    );
}

#[test]
fn stream_events_print_no_line() {
    for kind in [EventKind::Subscribed, EventKind::Closed] {
        let e = TapEvent {
            kind: Some(kind),
            proxy: "node-a".into(),
            rate: Some(50),
            reason: Some("shutting down".into()),
            ..TapEvent::default()
        };
        for output in [Output::Request, Output::Events, Output::Wide, Output::Json] {
            assert_eq!(line(&e, output), None);
        }
    }
    assert_eq!(line(&TapEvent::default(), Output::Json), None);
}

#[test]
fn a_request_line_is_the_whole_request_from_its_end() {
    let [start, headers, end] = events();
    assert_eq!(line(&start, Output::Request), None);
    assert_eq!(line(&headers, Output::Request), None);
    let l = line(&end, Output::Request).unwrap();
    assert!(l.starts_with("req id="), "{l}");
    for field in [
        ":method=",
        ":path=",
        ":status=",
        "latency=",
        "duration=",
        "success=",
    ] {
        assert!(l.contains(field), "{field} in {l}");
    }
}
