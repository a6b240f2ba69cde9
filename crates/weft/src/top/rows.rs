//! `weft top`'s table: one row per (source, direction, destination, method, path), fed by
//! `end` events (they carry the latency and the verdict), bounded to the most recent keys,
//! and sorted by any column.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::IpAddr;

use clap::ValueEnum;
use weft_core::tap::{EventKind, TapDirection, TapEvent};

use super::latencies::Latencies;

/// Rows kept: past it, the row updated longest ago goes.
pub const MAX_ROWS: usize = 1_000;

/// What a row counts. The direction is part of it: on a node an app and its proxy share
/// an address, so an app's call (outbound) and its proxy's hop to a peer (inbound there)
/// have the same source and would otherwise count each request twice in one row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RowKey {
    pub source_ip: Option<IpAddr>,
    pub source_name: Option<String>,
    pub direction: Option<TapDirection>,
    pub destination: String,
    pub method: String,
    pub path: String,
}

#[derive(Debug)]
struct Row {
    count: u64,
    successes: u64,
    latencies: Latencies,
    /// When it was last updated, in events: the oldest is evicted first.
    touched: u64,
}

/// A row's figures, ready to sort and show.
#[derive(Debug, Clone, PartialEq)]
pub struct RowView {
    pub source: String,
    pub direction: &'static str,
    pub destination: String,
    pub method: String,
    pub path: String,
    pub count: u64,
    /// Of 1.
    pub success_rate: f64,
    /// Microseconds; `None` when no request of the row got an answer.
    pub p50: Option<u64>,
    pub p99: Option<u64>,
    pub best: Option<u64>,
    pub worst: Option<u64>,
}

/// The columns, in the order they are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Column {
    Source,
    Dir,
    Destination,
    Method,
    Path,
    Count,
    Success,
    P50,
    P99,
    Best,
    Worst,
}

/// Which column orders the rows, and whether the order is turned around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: Column,
    pub reversed: bool,
}

pub struct Table {
    rows: HashMap<RowKey, Row>,
    max_rows: usize,
    events: u64,
    rng: fastrand::Rng,
}

impl Column {
    pub const ALL: [Column; 11] = [
        Column::Source,
        Column::Dir,
        Column::Destination,
        Column::Method,
        Column::Path,
        Column::Count,
        Column::Success,
        Column::P50,
        Column::P99,
        Column::Best,
        Column::Worst,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Column::Source => "SOURCE",
            Column::Dir => "DIR",
            Column::Destination => "DESTINATION",
            Column::Method => "METHOD",
            Column::Path => "PATH",
            Column::Count => "COUNT",
            Column::Success => "SUCCESS",
            Column::P50 => "P50",
            Column::P99 => "P99",
            Column::Best => "BEST",
            Column::Worst => "WORST",
        }
    }

    /// Figures, shown right-aligned and sorted largest first until reversed.
    pub fn is_figure(self) -> bool {
        !matches!(
            self,
            Column::Source | Column::Dir | Column::Destination | Column::Method | Column::Path
        )
    }

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|&c| c == self).unwrap_or(0)
    }

    /// The next column to the right (`step` 1) or left (`step` -1), wrapping around.
    pub fn step(self, step: isize) -> Column {
        let n = Self::ALL.len() as isize;
        Self::ALL[(self.index() as isize + step).rem_euclid(n) as usize]
    }
}

impl Default for Sort {
    fn default() -> Self {
        Self {
            column: Column::Count,
            reversed: false,
        }
    }
}

impl Sort {
    /// The order of two rows: the column's own (text A→Z, figures largest first), turned
    /// around when reversed; ties broken by the rest of the key so the order holds still
    /// between refreshes.
    pub fn compare(&self, a: &RowView, b: &RowView) -> Ordering {
        let turn = |o: Ordering| if self.reversed { o.reverse() } else { o };
        // A row without a latency sorts after every row with one, either way round.
        let figure = |x: Option<u64>, y: Option<u64>| match (x, y) {
            (Some(x), Some(y)) => turn(y.cmp(&x)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        let by_column = match self.column {
            Column::Source => turn(a.source.cmp(&b.source)),
            Column::Dir => turn(a.direction.cmp(b.direction)),
            Column::Destination => turn(a.destination.cmp(&b.destination)),
            Column::Method => turn(a.method.cmp(&b.method)),
            Column::Path => turn(a.path.cmp(&b.path)),
            Column::Count => turn(b.count.cmp(&a.count)),
            Column::Success => turn(b.success_rate.total_cmp(&a.success_rate)),
            Column::P50 => figure(a.p50, b.p50),
            Column::P99 => figure(a.p99, b.p99),
            Column::Best => figure(a.best, b.best),
            Column::Worst => figure(a.worst, b.worst),
        };
        by_column.then_with(|| {
            (&a.destination, &a.source, a.direction, &a.method, &a.path).cmp(&(
                &b.destination,
                &b.source,
                b.direction,
                &b.method,
                &b.path,
            ))
        })
    }
}

impl Default for Table {
    fn default() -> Self {
        Self::new(MAX_ROWS)
    }
}

impl Table {
    pub fn new(max_rows: usize) -> Self {
        Self {
            rows: HashMap::new(),
            max_rows: max_rows.max(1),
            events: 0,
            rng: fastrand::Rng::new(),
        }
    }

    /// Counts an `end` event; other events are not counted (an `end` repeats the request).
    pub fn record(&mut self, e: &TapEvent) {
        if e.kind != Some(EventKind::End) {
            return;
        }
        self.events += 1;
        let key = RowKey {
            source_ip: e.source.map(|s| s.ip()),
            source_name: e.source_name.clone(),
            direction: e.direction,
            destination: e.service.clone(),
            method: e.method.clone(),
            path: e.path.clone(),
        };
        if !self.rows.contains_key(&key) && self.rows.len() >= self.max_rows {
            let oldest = self
                .rows
                .iter()
                .min_by_key(|(_, r)| r.touched)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.rows.remove(&k);
            }
        }
        let row = self.rows.entry(key).or_insert_with(|| Row {
            count: 0,
            successes: 0,
            latencies: Latencies::default(),
            touched: 0,
        });
        row.count += 1;
        row.successes += u64::from(e.success == Some(true));
        row.touched = self.events;
        if let Some(us) = e.latency_us {
            row.latencies.record(us, &mut self.rng);
        }
    }

    /// Requests counted, evicted rows' included.
    pub fn requests(&self) -> u64 {
        self.events
    }

    /// Every row's figures, in `sort`'s order.
    pub fn view(&mut self, sort: Sort) -> Vec<RowView> {
        let mut out: Vec<RowView> = self
            .rows
            .iter_mut()
            .map(|(k, r)| RowView {
                source: source_label(k),
                direction: match k.direction {
                    Some(TapDirection::Outbound) => "out",
                    Some(TapDirection::Inbound) => "in",
                    None => "-",
                },
                destination: k.destination.clone(),
                method: k.method.clone(),
                path: k.path.clone(),
                count: r.count,
                success_rate: r.successes as f64 / r.count.max(1) as f64,
                p50: r.latencies.percentile(50),
                p99: r.latencies.percentile(99),
                best: r.latencies.best(),
                worst: r.latencies.worst(),
            })
            .collect();
        out.sort_by(|a, b| sort.compare(a, b));
        out
    }
}

impl RowView {
    /// The row as shown, a cell per column of `Column::ALL`.
    pub fn cells(&self) -> [String; 11] {
        [
            self.source.clone(),
            self.direction.to_string(),
            self.destination.clone(),
            self.method.clone(),
            self.path.clone(),
            self.count.to_string(),
            percent(self.success_rate),
            latency(self.p50),
            latency(self.p99),
            latency(self.best),
            latency(self.worst),
        ]
    }
}

/// `hello-7d9f (10.1.2.3)` where the pod is known, else the address.
fn source_label(k: &RowKey) -> String {
    match (&k.source_name, k.source_ip) {
        (Some(n), Some(ip)) => format!("{n} ({ip})"),
        (Some(n), None) => n.clone(),
        (None, Some(ip)) => ip.to_string(),
        (None, None) => "-".into(),
    }
}

/// A latency to read at a glance: `850µs`, `12.3ms`, `1.25s`.
pub fn latency(us: Option<u64>) -> String {
    match us {
        None => "-".into(),
        Some(us) if us < 1_000 => format!("{us}µs"),
        Some(us) if us < 1_000_000 => format!("{:.1}ms", us as f64 / 1e3),
        Some(us) => format!("{:.2}s", us as f64 / 1e6),
    }
}

/// `99.50%`, as `weft stat` shows it.
pub fn percent(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

#[cfg(test)]
mod tests;
