//! What `weft tap` and `weft top` share: the filter and source flags, the tap URLs they
//! become (the dashboard's `/api/tap`, or each proxy's `/tap` with its share of the rate),
//! and a watch on the stream that tells a refused subscription from a quiet one.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::mpsc::Receiver;
use weft_core::tap::{encode, EventKind, TapEvent, TapFilter, DEFAULT_RATE, TAP_PATH};
use weft_core::{duration, ports};

/// The filter flags and where to tap, the same for `weft tap` and `weft top`.
#[derive(Args, Clone, Debug)]
pub struct TapFlags {
    /// Only requests for this service.
    pub service: Option<String>,
    /// Only one side of the proxies: `outbound` (apps' calls) or `inbound` (peers'
    /// requests for the instances on their node).
    #[arg(long)]
    pub direction: Option<String>,
    /// Only this method (GET, POST …).
    #[arg(long)]
    pub method: Option<String>,
    /// Only this authority (host[:port] as the client wrote it).
    #[arg(long)]
    pub authority: Option<String>,
    /// Only paths that start with this prefix.
    #[arg(long)]
    pub path: Option<String>,
    /// Only these answers: 1xx … 5xx, or success or failure as the metrics count them.
    #[arg(long)]
    pub status: Option<String>,
    /// Only requests sent to this instance (IP:PORT).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Events per second in all (start, headers and end count one each), split across the
    /// proxies; events past it are not sent.
    #[arg(long, default_value_t = DEFAULT_RATE)]
    pub rate: u32,
    /// Tap this proxy's admin listener (HOST[:PORT], port 9990 unless given) instead of
    /// the dashboard; repeat for several.
    #[arg(long = "proxy", value_name = "ADDR")]
    pub proxies: Vec<String>,
    /// The dashboard that taps every proxy for us.
    #[arg(long, env = "WEFT_DASHBOARD", default_value_t = format!("http://{}", ports::loopback(ports::DASHBOARD)))]
    pub dashboard: String,
    /// Stop after this long (500ms, 10s, 2m).
    #[arg(long, value_parser = duration::parse)]
    pub duration: Option<Duration>,
}

impl TapFlags {
    /// The filter the flags ask for, checked here as a proxy would check it, so a typo is
    /// told before anything connects and in the contract's own words.
    pub fn filter(&self) -> anyhow::Result<TapFilter> {
        let mut query = String::new();
        let given = [
            ("service", &self.service),
            ("direction", &self.direction),
            ("method", &self.method),
            ("authority", &self.authority),
            ("path", &self.path),
            ("status", &self.status),
            ("endpoint", &self.endpoint),
        ];
        for (key, value) in given {
            if let Some(v) = value {
                query.push_str(&format!("{key}={}&", encode(v)));
            }
        }
        query.push_str(&format!("rate={}", self.rate));
        TapFilter::parse(&query).context("invalid tap filter")
    }

    /// The URLs to subscribe to: the dashboard's, or one per proxy with its share of the
    /// rate (the dashboard splits the rate itself).
    pub fn urls(&self, filter: &TapFilter) -> Vec<String> {
        if self.proxies.is_empty() {
            let base = with_scheme(&self.dashboard);
            return vec![format!("{base}/api/tap?{}", filter.to_query())];
        }
        let share = TapFilter {
            rate: weft_dashboard::tap::split_rate(filter.rate, self.proxies.len()),
            ..filter.clone()
        };
        let query = share.to_query();
        self.proxies
            .iter()
            .map(|p| format!("{}{TAP_PATH}?{query}", admin_base(p)))
            .collect()
    }

    /// What the filter is, in a line: `service=world status=5xx rate=100/s`.
    pub fn summary(filter: &TapFilter) -> String {
        let mut parts: Vec<String> = filter
            .to_query()
            .split('&')
            .filter(|p| !p.starts_with("rate="))
            .map(str::to_string)
            .collect();
        parts.push(format!("rate={}/s", filter.rate));
        parts.join(" ")
    }
}

/// `http://` is the default scheme; a trailing `/` goes.
fn with_scheme(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.contains("://") {
        base.to_string()
    } else {
        format!("http://{base}")
    }
}

/// A proxy's admin listener as a URL base: `10.0.0.5`, `node-1:9990`, `[::1]` or a URL.
fn admin_base(addr: &str) -> String {
    let addr = addr.trim_end_matches('/');
    if addr.contains("://") {
        return addr.to_string();
    }
    if addr.parse::<SocketAddr>().is_ok() {
        return format!("http://{addr}");
    }
    let bare = addr.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return format!("http://{}", SocketAddr::new(ip, ports::ADMIN));
    }
    match addr.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => format!("http://{addr}"),
        _ => format!("http://{addr}:{}", ports::ADMIN),
    }
}

/// The merged stream of every URL's events (see `weft_dashboard::tap::subscribe`); to be
/// called inside a Tokio runtime.
pub fn subscribe(urls: Vec<String>) -> Receiver<TapEvent> {
    weft_dashboard::tap::subscribe(urls)
}

/// Resolves after `d`, or never.
pub async fn stop_after(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Whether any source opened, and the reasons the closed ones gave: a stream whose every
/// source closed before sending anything was refused (or never reached), not quiet.
#[derive(Debug, Default)]
pub struct Sources {
    opened: bool,
    closed: usize,
}

impl Sources {
    /// Takes note of an event; for a `closed` one, returns what to tell the user.
    pub fn note(&mut self, event: &TapEvent) -> Option<String> {
        if event.kind != Some(EventKind::Closed) {
            self.opened = true;
            return None;
        }
        self.closed += 1;
        let reason = event.reason.as_deref().unwrap_or("").trim();
        Some(match (reason.is_empty(), event.proxy.is_empty()) {
            (false, _) if reason.starts_with(&event.proxy) => reason.to_string(),
            (false, true) => reason.to_string(),
            (false, false) => format!("{}: {reason}", event.proxy),
            (true, _) => format!("{}: closed", event.proxy),
        })
    }

    /// At the stream's end: an error when nothing but refusals came.
    pub fn finish(&self) -> anyhow::Result<()> {
        if !self.opened && self.closed > 0 {
            anyhow::bail!("no tap stream could be opened (the reasons are above)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
