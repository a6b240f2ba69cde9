use clap::Parser;
use weft_core::tap::{StatusFilter, TapDirection};

use super::*;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    flags: TapFlags,
}

fn flags(args: &[&str]) -> TapFlags {
    let mut argv = vec!["weft"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).expect("flags parse").flags
}

#[test]
fn every_flag_lands_in_its_filter_field() {
    let f = flags(&[
        "World",
        "--direction",
        "inbound",
        "--method",
        "post",
        "--authority",
        "World:80",
        "--path",
        "/api/v1",
        "--status",
        "5xx",
        "--endpoint",
        "10.0.0.5:7778",
        "--rate",
        "40",
    ])
    .filter()
    .unwrap();
    assert_eq!(
        f,
        TapFilter {
            service: Some("world".into()),
            direction: Some(TapDirection::Inbound),
            method: Some("POST".into()),
            authority: Some("world:80".into()),
            path_prefix: Some("/api/v1".into()),
            status: Some(StatusFilter::Class(5)),
            endpoint: Some("10.0.0.5:7778".parse().unwrap()),
            rate: 40,
            ends_only: false,
        }
    );
}

#[test]
fn no_flags_is_everything_at_the_default_rate() {
    let f = flags(&[]).filter().unwrap();
    assert_eq!(
        f,
        TapFilter {
            rate: DEFAULT_RATE,
            ..TapFilter::default()
        }
    );
}

#[test]
fn bad_flags_are_refused_in_the_contracts_words_before_connecting() {
    let cases = [
        (vec!["--status", "6xx"], "invalid status \"6xx\""),
        (vec!["--direction", "sideways"], "invalid direction"),
        (vec!["--path", "api"], "a path prefix starts with /"),
        (vec!["--endpoint", "world"], "not an IP:port"),
        (vec!["--rate", "0"], "events per second"),
        (vec!["--rate", "20000"], "events per second"),
        (vec!["--method", "GET /"], "not an HTTP method"),
        (vec!["hello world"], "not a service name"),
    ];
    for (args, want) in cases {
        let err = format!("{:#}", flags(&args).filter().unwrap_err());
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(err.starts_with("invalid tap filter"), "{err}");
    }
}

#[test]
fn the_dashboard_gets_the_whole_rate_and_splits_it_itself() {
    let f = flags(&["world", "--dashboard", "127.0.0.1:8084/"]);
    let urls = f.urls(&f.filter().unwrap());
    assert_eq!(
        urls,
        ["http://127.0.0.1:8084/api/tap?service=world&rate=100"]
    );
}

#[test]
fn proxies_tapped_directly_each_get_a_share_of_the_rate() {
    let f = flags(&[
        "--rate",
        "100",
        "--proxy",
        "127.0.0.2:9991",
        "--proxy",
        "10.0.0.3",
        "--proxy",
        "node-3",
        "--proxy",
        "[::1]",
        "--proxy",
        "http://node-4:9000/",
    ]);
    let urls = f.urls(&f.filter().unwrap());
    assert_eq!(
        urls,
        [
            "http://127.0.0.2:9991/tap?rate=20",
            "http://10.0.0.3:9990/tap?rate=20",
            "http://node-3:9990/tap?rate=20",
            "http://[::1]:9990/tap?rate=20",
            "http://node-4:9000/tap?rate=20",
        ]
    );
    let f = flags(&[
        "--rate", "2", "--proxy", "a", "--proxy", "b", "--proxy", "c",
    ]);
    assert!(f.urls(&f.filter().unwrap())[0].ends_with("rate=1"));
}

#[test]
fn a_stream_of_refusals_alone_is_an_error_but_a_quiet_one_is_not() {
    let closed = TapEvent {
        kind: Some(EventKind::Closed),
        proxy: "http://127.0.0.2:9990/tap?rate=100".into(),
        reason: Some("http://127.0.0.2:9990/tap?rate=100: unknown service \"wrold\"".into()),
        ..TapEvent::default()
    };
    let mut s = Sources::default();
    assert_eq!(
        s.note(&closed).as_deref(),
        Some("http://127.0.0.2:9990/tap?rate=100: unknown service \"wrold\"")
    );
    assert!(s.finish().is_err());

    let mut s = Sources::default();
    let subscribed = TapEvent {
        kind: Some(EventKind::Subscribed),
        ..TapEvent::default()
    };
    assert_eq!(s.note(&subscribed), None);
    s.note(&closed);
    assert!(s.finish().is_ok());
    assert!(Sources::default().finish().is_ok());
}

#[test]
fn the_summary_names_the_filter_and_the_rate() {
    let f = flags(&["world", "--status", "failure"]).filter().unwrap();
    assert_eq!(
        TapFlags::summary(&f),
        "service=world status=failure rate=100/s"
    );
}
