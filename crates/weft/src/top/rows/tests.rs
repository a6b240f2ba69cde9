use std::net::SocketAddr;

use super::*;

pub fn end(src: &str, dir: TapDirection, dst: &str, path: &str, us: u64, ok: bool) -> TapEvent {
    TapEvent {
        kind: Some(EventKind::End),
        proxy: "node-1".into(),
        direction: Some(dir),
        service: dst.into(),
        method: "GET".into(),
        authority: dst.into(),
        path: path.into(),
        source: Some(src.parse::<SocketAddr>().unwrap()),
        status: Some(if ok { 200 } else { 500 }),
        latency_us: Some(us),
        success: Some(ok),
        ..TapEvent::default()
    }
}

const OUT: TapDirection = TapDirection::Outbound;
const IN: TapDirection = TapDirection::Inbound;

fn order(t: &mut Table, sort: Sort) -> Vec<String> {
    t.view(sort)
        .iter()
        .map(|r| format!("{} {}", r.destination, r.path))
        .collect()
}

/// Three rows: `a /x` (3 requests, all fast and fine), `b /y` (2, slow, half failed),
/// `c /z` (1, middling, fine).
fn three_rows() -> Table {
    let mut t = Table::default();
    for us in [100, 200, 300] {
        t.record(&end("10.0.0.1:1000", OUT, "a", "/x", us, true));
    }
    t.record(&end("10.0.0.1:1001", OUT, "b", "/y", 9_000, true));
    t.record(&end("10.0.0.1:1002", OUT, "b", "/y", 8_000, false));
    t.record(&end("10.0.0.1:1003", OUT, "c", "/z", 1_000, true));
    t
}

fn by(column: Column, reversed: bool) -> Sort {
    Sort { column, reversed }
}

#[test]
fn rows_count_end_events_per_source_address_direction_destination_method_and_path() {
    let mut t = Table::default();
    // The client's port differs per connection; the row is per address.
    t.record(&end("10.0.0.1:1000", OUT, "world", "/", 100, true));
    t.record(&end("10.0.0.1:2000", OUT, "world", "/", 300, false));
    // The same address as an inbound source is a proxy's hop, another row.
    t.record(&end("10.0.0.1:3000", IN, "world", "/", 200, true));
    t.record(&end("10.0.0.1:4000", OUT, "world", "/other", 200, true));
    // Start and headers events repeat the request but are not counted.
    let mut start = end("10.0.0.1:1000", OUT, "world", "/", 100, true);
    start.kind = Some(EventKind::Start);
    t.record(&start);
    start.kind = Some(EventKind::Headers);
    t.record(&start);

    assert_eq!(t.requests(), 4);
    let rows = t.view(Sort::default());
    assert_eq!(rows.len(), 3);
    let first = &rows[0];
    assert_eq!(
        (first.source.as_str(), first.direction, first.path.as_str()),
        ("10.0.0.1", "out", "/")
    );
    assert_eq!((first.count, first.success_rate), (2, 0.5));
    assert_eq!((first.best, first.worst), (Some(100), Some(300)));
}

#[test]
fn a_known_pod_is_named_with_its_address() {
    let mut t = Table::default();
    let mut e = end("10.0.0.1:1000", OUT, "world", "/", 100, true);
    e.source_name = Some("hello-7d9f".into());
    t.record(&e);
    e.source = None;
    t.record(&e);
    let mut sources: Vec<String> = t
        .view(Sort::default())
        .into_iter()
        .map(|r| r.source)
        .collect();
    sources.sort();
    assert_eq!(sources, ["hello-7d9f", "hello-7d9f (10.0.0.1)"]);
}

#[test]
fn figures_sort_largest_first_and_text_a_to_z() {
    let mut t = three_rows();
    assert_eq!(
        order(&mut t, by(Column::Count, false)),
        ["a /x", "b /y", "c /z"]
    );
    assert_eq!(
        order(&mut t, by(Column::P99, false)),
        ["b /y", "c /z", "a /x"]
    );
    assert_eq!(
        order(&mut t, by(Column::Best, false)),
        ["b /y", "c /z", "a /x"]
    );
    assert_eq!(
        order(&mut t, by(Column::Destination, false)),
        ["a /x", "b /y", "c /z"]
    );
    assert_eq!(
        order(&mut t, by(Column::Path, true)),
        ["c /z", "b /y", "a /x"]
    );
}

#[test]
fn reversing_turns_the_order_around_but_ties_keep_theirs() {
    let mut t = three_rows();
    assert_eq!(
        order(&mut t, by(Column::Count, true)),
        ["c /z", "b /y", "a /x"]
    );
    // a and c are both at 100 %: tied, they stay in key order whichever way round.
    assert_eq!(
        order(&mut t, by(Column::Success, false)),
        ["a /x", "c /z", "b /y"]
    );
    assert_eq!(
        order(&mut t, by(Column::Success, true)),
        ["b /y", "a /x", "c /z"]
    );
}

#[test]
fn a_row_without_latencies_sorts_last_either_way() {
    let mut t = three_rows();
    let mut e = end("10.0.0.1:1000", OUT, "d", "/w", 0, false);
    e.latency_us = None;
    t.record(&e);
    assert_eq!(
        order(&mut t, by(Column::P50, false)).last().unwrap(),
        "d /w"
    );
    assert_eq!(order(&mut t, by(Column::P50, true)).last().unwrap(), "d /w");
    assert_eq!(
        t.view(Sort::default())
            .iter()
            .find(|r| r.destination == "d")
            .unwrap()
            .p50,
        None
    );
}

#[test]
fn past_the_bound_the_row_updated_longest_ago_goes() {
    let mut t = Table::new(2);
    t.record(&end("10.0.0.1:1", OUT, "a", "/", 100, true));
    t.record(&end("10.0.0.1:1", OUT, "b", "/", 100, true));
    t.record(&end("10.0.0.1:1", OUT, "a", "/", 100, true));
    t.record(&end("10.0.0.1:1", OUT, "c", "/", 100, true));
    let mut kept: Vec<String> = t
        .view(Sort::default())
        .into_iter()
        .map(|r| r.destination)
        .collect();
    kept.sort();
    assert_eq!(kept, ["a", "c"]);
    assert_eq!(t.requests(), 4);
}

#[test]
fn columns_step_around_both_ways() {
    assert_eq!(Column::Source.step(-1), Column::Worst);
    assert_eq!(Column::Worst.step(1), Column::Source);
    assert_eq!(Column::Count.step(1), Column::Success);
    assert!(Column::Count.is_figure() && !Column::Path.is_figure());
}

#[test]
fn latencies_and_rates_read_at_a_glance() {
    assert_eq!(latency(Some(850)), "850µs");
    assert_eq!(latency(Some(12_345)), "12.3ms");
    assert_eq!(latency(Some(1_250_000)), "1.25s");
    assert_eq!(latency(None), "-");
    assert_eq!(percent(0.995), "99.50%");
}
