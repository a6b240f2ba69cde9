//! `weft top` when stdout is not a terminal: the table as plain text, printed every
//! `--interval`, or once at the end when only `--duration` is given, so that
//! `weft top --duration 10s > top.txt` holds one table.

use std::io::{self, Write};
use std::time::Duration;

use tokio::sync::mpsc::Receiver;
use weft_core::tap::TapEvent;

use super::rows::{Column, RowView, Sort, Table};
use crate::tap_source::{self, Sources};

/// How often to print: `None` is once, at the end.
pub fn period(interval: Option<Duration>, duration: Option<Duration>) -> Option<Duration> {
    match (interval, duration) {
        (Some(i), _) => Some(i),
        (None, Some(_)) => None,
        (None, None) => Some(super::DEFAULT_INTERVAL),
    }
}

/// Counts events until the stream ends, `duration` is over or Ctrl-C, printing the table
/// every `period` and once more at the end if it changed since.
pub async fn run(
    mut events: Receiver<TapEvent>,
    sort: Sort,
    period: Option<Duration>,
    duration: Option<Duration>,
) -> anyhow::Result<()> {
    let mut table = Table::default();
    let mut sources = Sources::default();
    let stop = tap_source::stop_after(duration);
    tokio::pin!(stop);
    // One listener for the whole run, so an interrupt between two turns is not missed.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut ticks = period.map(|p| tokio::time::interval_at(tokio::time::Instant::now() + p, p));
    let mut printed_any = false;
    let mut changed = false;
    loop {
        tokio::select! {
            e = events.recv() => match e {
                Some(e) => {
                    if let Some(why) = sources.note(&e) {
                        eprintln!("weft top: {why}");
                    }
                    table.record(&e);
                    changed = true;
                }
                None => break,
            },
            _ = tick(&mut ticks) => {
                if !print(&text(&table.view(sort)), &mut printed_any)? {
                    return Ok(());
                }
                changed = false;
            }
            () = &mut stop => break,
            _ = &mut interrupted => break,
        }
    }
    if changed || !printed_any {
        print(&text(&table.view(sort)), &mut printed_any)?;
    }
    sources.finish()
}

async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Prints a table, a blank line before all but the first; `false` once stdout is gone.
fn print(table: &str, printed_any: &mut bool) -> anyhow::Result<bool> {
    let mut out = io::stdout().lock();
    let sep = if *printed_any { "\n" } else { "" };
    *printed_any = true;
    match write!(out, "{sep}{table}").and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The table as text: a header line, then a row per line, columns padded to the widest
/// cell and three spaces apart (as `weft stat` prints).
pub fn text(rows: &[RowView]) -> String {
    let mut lines: Vec<[String; 11]> = vec![Column::ALL.map(|c| c.title().to_string())];
    lines.extend(rows.iter().map(RowView::cells));
    let widths: Vec<usize> = (0..Column::ALL.len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = Column::ALL
            .iter()
            .zip(l)
            .zip(&widths)
            .map(|((c, cell), &w)| {
                if c.is_figure() {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use weft_core::tap::{EventKind, TapDirection};

    use super::*;

    #[test]
    fn printed_every_interval_or_once_at_the_end_of_a_duration() {
        let s = Duration::from_secs;
        assert_eq!(period(None, None), Some(s(1)));
        assert_eq!(period(None, Some(s(10))), None);
        assert_eq!(period(Some(s(5)), Some(s(10))), Some(s(5)));
        assert_eq!(period(Some(s(2)), None), Some(s(2)));
    }

    #[test]
    fn the_text_table_lines_up_its_columns() {
        let mut t = Table::default();
        for (us, ok) in [(1_000, true), (3_000, false)] {
            t.record(&TapEvent {
                kind: Some(EventKind::End),
                direction: Some(TapDirection::Outbound),
                service: "world".into(),
                method: "GET".into(),
                path: "/".into(),
                source: Some("127.0.0.2:4000".parse().unwrap()),
                latency_us: Some(us),
                success: Some(ok),
                ..TapEvent::default()
            });
        }
        assert_eq!(
            text(&t.view(Sort::default())),
            "SOURCE      DIR   DESTINATION   METHOD   PATH   COUNT   SUCCESS     P50     P99    BEST   WORST\n\
             127.0.0.2   out   world         GET      /          2    50.00%   1.0ms   3.0ms   1.0ms   3.0ms\n"
        );
        assert_eq!(
            text(&[]),
            "SOURCE   DIR   DESTINATION   METHOD   PATH   COUNT   SUCCESS   P50   P99   BEST   WORST\n"
        );
    }
}
