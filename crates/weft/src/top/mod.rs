//! `weft top`: the requests the mesh is serving now, live, one row per source, destination,
//! method and path, with counts, success rates and latency percentiles from tap events.
//!
//! Layout:
//! - [`latencies`]: a row's bounded latency sample and its exact percentiles.
//! - [`rows`]: the rows, keyed, bounded and sorted by any column.
//! - [`render`]: the full-screen table, drawn with ratatui.
//! - [`interactive`]: the terminal's loop: keys, refreshes, the stream drained between.
//! - [`plain`]: the same table as text when stdout is not a terminal.

mod interactive;
mod latencies;
mod plain;
mod render;
mod rows;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::Args;
use weft_core::duration;

use crate::tap_source::{self, TapFlags};
use rows::{Column, Sort};

/// How often the screen is redrawn, and the text table printed when not on a terminal.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Args)]
pub struct TopArgs {
    #[command(flatten)]
    flags: TapFlags,
    /// The column to sort by at first (on a terminal, keys change it): figures largest
    /// first, text A to Z.
    #[arg(long, value_enum, default_value = "count")]
    sort: Column,
    /// Turn the order around.
    #[arg(long)]
    reverse: bool,
    /// How often the screen is redrawn [default: 1s]. Not on a terminal, how often the
    /// table is printed (a blank line between tables); there, with --duration and no
    /// --interval, it is printed once, at the end.
    #[arg(long, value_parser = positive)]
    interval: Option<Duration>,
}

/// A period to print or redraw by: zero would spin.
fn positive(s: &str) -> Result<Duration, String> {
    match duration::parse(s)? {
        d if d.is_zero() => Err("must be more than 0s".into()),
        d => Ok(d),
    }
}

pub fn run(args: TopArgs) -> anyhow::Result<()> {
    // Rows count `end` events only: asking for nothing else covers three times the
    // requests at the same rate.
    let mut filter = args.flags.filter()?;
    filter.ends_only = true;
    let urls = args.flags.urls(&filter);
    let sort = Sort {
        column: args.sort,
        reversed: args.reverse,
    };
    let duration = args.flags.duration;
    if !std::io::stdout().is_terminal() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let period = plain::period(args.interval, duration);
        return runtime.block_on(async {
            plain::run(tap_source::subscribe(urls), sort, period, duration).await
        });
    }
    // The screen's thread blocks on the keyboard; the streams are read on a worker.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let events = {
        let _in_runtime = runtime.enter();
        tap_source::subscribe(urls)
    };
    let until = duration.map(|d| Instant::now() + d);
    let refresh = args.interval.unwrap_or(DEFAULT_INTERVAL);
    let summary = TapFlags::summary(&filter);
    interactive::run(events, &summary, sort, refresh, until)
}
