//! `weft tap`: the mesh's requests as they happen, one line per request (or per event,
//! as `linkerd viz tap` shows them), from the dashboard or straight from proxies.

use std::io::{self, Write};

use clap::{Args, ValueEnum};
use weft_core::tap::{EventKind, TapEvent};

use crate::tap_source::{self, Sources, TapFlags};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    /// One line per request, when it ends: what it was, its answer, latency and size.
    /// Only `end` events are asked for, so the rate covers three times the requests.
    Request,
    /// `req`, `rsp` and `end` lines (per event) with the fields that matter most.
    Events,
    /// Every line repeats the request and adds names, identities, trace and request ids
    /// and headers, so one line stands alone in a grep.
    Wide,
    /// The events as the proxies send them, one JSON object per line.
    Json,
}

#[derive(Args)]
pub struct TapArgs {
    #[command(flatten)]
    flags: TapFlags,
    #[arg(short = 'o', long, value_enum, default_value = "request")]
    output: Output,
    /// Stop after this many lines on stdout (requests, or events).
    #[arg(long)]
    max_events: Option<u64>,
}

pub fn run(args: TapArgs) -> anyhow::Result<()> {
    let mut filter = args.flags.filter()?;
    filter.ends_only = args.output == Output::Request;
    let urls = args.flags.urls(&filter);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut events = tap_source::subscribe(urls);
        let mut sources = Sources::default();
        let stop = tap_source::stop_after(args.flags.duration);
        tokio::pin!(stop);
        let mut out = io::stdout().lock();
        let mut printed = 0u64;
        while args.max_events.is_none_or(|max| printed < max) {
            let event = tokio::select! {
                e = events.recv() => e,
                () = &mut stop => break,
            };
            let Some(event) = event else { break };
            if let Some(why) = sources.note(&event) {
                eprintln!("weft tap: {why}");
            }
            let Some(line) = line(&event, args.output) else {
                continue;
            };
            // A reader that went away (`| head`) ends the tap; it is not an error.
            if let Err(e) = writeln!(out, "{line}") {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(e.into());
            }
            printed += 1;
        }
        sources.finish()
    })
}

/// The stdout line for an event; `subscribed` and `closed` are about the stream, not a
/// request, and have none.
fn line(e: &TapEvent, output: Output) -> Option<String> {
    let kind = e.kind?;
    if matches!(kind, EventKind::Subscribed | EventKind::Closed) {
        return None;
    }
    if output == Output::Json {
        return serde_json::to_string(e).ok();
    }
    if output == Output::Request {
        return (kind == EventKind::End).then(|| request_line(e));
    }
    let wide = output == Output::Wide;
    let mut l = Fields::new(match kind {
        EventKind::Start => "req",
        EventKind::Headers => "rsp",
        _ => "end",
    });
    l.put("id", format!("{}:{}", e.proxy, e.id));
    if kind == EventKind::Start || wide {
        request(&mut l, e, wide);
    }
    match kind {
        EventKind::Start => {
            if wide {
                headers(&mut l, &e.request_headers);
            }
        }
        EventKind::Headers => {
            l.opt(":status", e.status);
            l.opt("latency", e.latency_us.map(micros));
            l.opt("endpoint", e.endpoint);
            l.opt("retries", e.retries);
            l.opt("error", e.error.as_deref().map(quoted));
            if wide {
                headers(&mut l, &e.response_headers);
            }
        }
        _ => {
            l.opt(":status", e.status);
            if wide {
                l.opt("latency", e.latency_us.map(micros));
                l.opt("endpoint", e.endpoint);
                l.opt("retries", e.retries);
            }
            l.opt("duration", e.duration_us.map(micros));
            l.opt("bytes", e.bytes);
            l.opt("success", e.success);
            l.opt("grpc-status", e.grpc_status);
            l.opt("error", e.error.as_deref().map(quoted));
        }
    }
    Some(l.0)
}

/// A whole request in a line, from its `end` event (which repeats the request's fields).
fn request_line(e: &TapEvent) -> String {
    let mut l = Fields::new("req");
    l.put("id", format!("{}:{}", e.proxy, e.id));
    request(&mut l, e, false);
    l.opt(":status", e.status);
    l.opt("latency", e.latency_us.map(micros));
    l.opt("duration", e.duration_us.map(micros));
    l.opt("bytes", e.bytes);
    l.opt("endpoint", e.endpoint);
    l.opt("retries", e.retries);
    l.opt("success", e.success);
    l.opt("grpc-status", e.grpc_status);
    l.opt("error", e.error.as_deref().map(quoted));
    l.0
}

/// The request's own fields, which a `req` line shows and every wide line repeats.
fn request(l: &mut Fields, e: &TapEvent, wide: bool) {
    l.opt("dir", e.direction.map(|d| d.as_str()));
    l.nonempty("svc", &e.service);
    l.nonempty(":method", &e.method);
    l.nonempty(":authority", &e.authority);
    l.nonempty(":path", &e.path);
    l.opt("src", e.source);
    if wide {
        l.opt("src-name", e.source_name.as_deref());
        l.opt("peer", e.peer_identity.as_deref());
        l.opt("trace", e.trace_id.as_deref());
        l.opt("request-id", e.request_id.as_deref().map(quoted));
    }
}

/// `header:NAME=VALUE`, or the name alone where the value is not shown.
fn headers(l: &mut Fields, headers: &[(String, Option<String>)]) {
    for (name, value) in headers {
        match value {
            Some(v) => l.put(&format!("header:{name}"), quoted(v)),
            None => l.put_bare(&format!("header:{name}")),
        }
    }
}

/// A line of space-separated `key=value` fields.
struct Fields(String);

impl Fields {
    fn new(tag: &str) -> Self {
        Self(tag.to_string())
    }

    fn put(&mut self, key: &str, value: impl std::fmt::Display) {
        self.0.push_str(&format!(" {key}={value}"));
    }

    fn put_bare(&mut self, key: &str) {
        self.0.push(' ');
        self.0.push_str(key);
    }

    fn opt(&mut self, key: &str, value: Option<impl std::fmt::Display>) {
        if let Some(v) = value {
            self.put(key, v);
        }
    }

    fn nonempty(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            self.put(key, value);
        }
    }
}

fn micros(us: u64) -> String {
    format!("{us}µs")
}

/// A value as it is when it cannot be mistaken for two fields, else quoted.
fn quoted(v: &str) -> String {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

#[cfg(test)]
mod tests;
