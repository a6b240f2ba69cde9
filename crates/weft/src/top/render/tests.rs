use std::net::SocketAddr;

use ratatui::backend::TestBackend;
use ratatui::Terminal;
use weft_core::tap::{EventKind, TapDirection, TapEvent};

use super::*;
use crate::top::rows::Table;

fn draw(screen: &Screen, width: u16, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| render(f, screen)).unwrap();
    let buffer = terminal.backend().buffer();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

fn end(src: &str, dir: TapDirection, dst: &str, method: &str, us: u64, ok: bool) -> TapEvent {
    TapEvent {
        kind: Some(EventKind::End),
        direction: Some(dir),
        service: dst.into(),
        method: method.into(),
        path: if dst == "hello" { "/api" } else { "/hello" }.into(),
        source: Some(src.parse::<SocketAddr>().unwrap()),
        latency_us: Some(us),
        success: Some(ok),
        ..TapEvent::default()
    }
}

/// Known traffic: 100 outbound calls to world at 1 … 100 ms, one of them failed; 4
/// inbound at 200 … 800 µs, half failed; one 2.5 s call to hello from a named pod.
fn known() -> Table {
    let mut t = Table::default();
    for ms in 1..=100 {
        let e = end(
            "127.0.0.2:40000",
            TapDirection::Outbound,
            "world",
            "GET",
            ms * 1000,
            ms != 7,
        );
        t.record(&e);
    }
    for (i, us) in [800, 200, 600, 400].into_iter().enumerate() {
        let e = end(
            "127.0.0.3:50000",
            TapDirection::Inbound,
            "world",
            "GET",
            us,
            i % 2 == 0,
        );
        t.record(&e);
    }
    let mut e = end(
        "127.0.0.1:1234",
        TapDirection::Outbound,
        "hello",
        "POST",
        2_500_000,
        true,
    );
    e.source_name = Some("traffic-1".into());
    t.record(&e);
    t
}

fn screen_of(rows: &[RowView], sort: Sort) -> Vec<String> {
    draw(
        &Screen {
            filter: "service=world rate=100/s",
            requests: 105,
            rows,
            sort,
            status: None,
        },
        110,
        7,
    )
}

#[test]
fn the_table_shows_counts_success_rates_and_exact_percentiles() {
    let rows = known().view(Sort::default());
    let lines = screen_of(&rows, Sort::default());
    assert_eq!(
        lines,
        [
            "weft top   service=world rate=100/s   105 requests   3 rows",
            "SOURCE                 DIR   DESTINATION   METHOD   PATH      COUNT▼   SUCCESS     P50     P99   BEST    WORST",
            "127.0.0.2              out   world         GET      /hello       100    99.00%  50.0ms  99.0ms  1.0ms  100.0ms",
            "127.0.0.3              in    world         GET      /hello         4    50.00%   400µs   800µs  200µs    800µs",
            "traffic-1 (127.0.0.1)  out   hello         POST     /api           1   100.00%   2.50s   2.50s  2.50s    2.50s",
            "",
            "←/→ or 1-9,0: sort column   r: reverse   q: quit",
        ]
    );
}

#[test]
fn rows_follow_the_sort_column_and_its_arrow_shows_the_order() {
    let by_p99 = Sort {
        column: Column::P99,
        reversed: false,
    };
    let lines = screen_of(&known().view(by_p99), by_p99);
    assert!(lines[1].contains("P99▼"), "{}", lines[1]);
    let sources: Vec<&str> = lines[2..5]
        .iter()
        .map(|l| l.split("  ").next().unwrap())
        .collect();
    assert_eq!(sources, ["traffic-1 (127.0.0.1)", "127.0.0.2", "127.0.0.3"]);

    let success_up = Sort {
        column: Column::Success,
        reversed: true,
    };
    let lines = screen_of(&known().view(success_up), success_up);
    assert!(lines[1].contains("SUCCESS▲"), "{}", lines[1]);
    let rates: Vec<&str> = lines[2..5]
        .iter()
        .map(|l| l.split_whitespace().find(|w| w.ends_with('%')).unwrap())
        .collect();
    assert_eq!(rates, ["50.00%", "99.00%", "100.00%"]);

    let by_path = Sort {
        column: Column::Path,
        reversed: false,
    };
    let lines = screen_of(&known().view(by_path), by_path);
    assert!(lines[1].contains("PATH▲"), "{}", lines[1]);
    assert!(lines[2].contains("/api"), "{}", lines[2]);
}

#[test]
fn a_closed_source_is_said_in_place_of_the_keys() {
    let lines = draw(
        &Screen {
            filter: "rate=100/s",
            requests: 0,
            rows: &[],
            sort: Sort::default(),
            status: Some("http://127.0.0.1:8084/api/tap?rate=100: connection refused"),
        },
        80,
        4,
    );
    assert_eq!(lines[0], "weft top   rate=100/s   0 requests   0 rows");
    assert!(lines[1].starts_with("SOURCE"), "{}", lines[1]);
    assert_eq!(
        lines[3],
        "http://127.0.0.1:8084/api/tap?rate=100: connection refused"
    );
}
