//! The tap contract: which requests a subscriber asks for (a [`TapFilter`], read from a
//! query string) and what it is sent (newline-delimited [`TapEvent`]s). Proxies serve it on
//! their admin listener, the dashboard merges it from every proxy, `weft tap` and `weft top`
//! read it: this is the one home of its shape.

use std::fmt::Write;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Where a proxy serves its tap stream (admin listener; the dashboard's is `/api/tap`).
pub const TAP_PATH: &str = "/tap";
/// What a subscriber gets unless it asks for less: events per second in all.
pub const DEFAULT_RATE: u32 = 100;
/// The most a subscriber may ask of one proxy.
pub const MAX_RATE: u32 = 10_000;
/// The longest path prefix a filter may name, and the longest path an event shows.
pub const MAX_PATH_BYTES: usize = 512;
/// How often a stream with nothing to say sends an empty line, which readers skip: writing
/// is how a server learns its subscriber has gone, and a quiet filter writes nothing else.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);
/// Header names whose values are never shown, whatever the config allows.
pub const NEVER_SHOWN: [&str; 4] = [
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
];

/// Which side of the proxy saw the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TapDirection {
    /// An app's call on this node (or an outside caller's, at an ingress).
    Outbound,
    /// A peer's request for an instance on this node.
    Inbound,
}

impl TapDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbound => "outbound",
            Self::Inbound => "inbound",
        }
    }
}

/// Which answers a filter takes: a status class, or the metrics' own classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    /// `1xx` … `5xx`.
    Class(u8),
    /// Failed as the metrics count it: a 5xx, a non-zero `grpc-status`, no answer.
    Failure,
    Success,
}

/// What a subscriber wants to see; every field set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TapFilter {
    pub service: Option<String>,
    pub direction: Option<TapDirection>,
    /// Upper case, as on the wire.
    pub method: Option<String>,
    /// As the client addressed it, compared without case.
    pub authority: Option<String>,
    pub path_prefix: Option<String>,
    pub status: Option<StatusFilter>,
    /// The instance the request was sent to.
    pub endpoint: Option<SocketAddr>,
    /// Events per second in all (start, headers and end each count one).
    pub rate: u32,
    /// Only each request's `end` event (`events=end`), which carries everything a table
    /// needs: three times the requests for the same rate.
    pub ends_only: bool,
}

/// Why a filter was refused: said back to the subscriber as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("unknown tap parameter {0:?}; known: service, direction, method, authority, path, status, endpoint, rate, events")]
    Unknown(String),
    #[error("invalid {param} {value:?}: {why}")]
    Invalid {
        param: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("{0} is given twice")]
    Repeated(&'static str),
}

impl TapFilter {
    /// Reads `service=world&status=5xx&rate=50` (query-encoded values).
    pub fn parse(query: &str) -> Result<Self, FilterError> {
        let mut f = Self {
            rate: DEFAULT_RATE,
            ..Self::default()
        };
        let (mut rate_seen, mut events_seen) = (false, false);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(raw).ok_or_else(|| FilterError::Invalid {
                param: "value",
                value: raw.to_string(),
                why: "not valid percent-encoded UTF-8",
            })?;
            let invalid = |param, why| FilterError::Invalid {
                param,
                value: value.clone(),
                why,
            };
            match key {
                "service" => {
                    let ok = !value.is_empty()
                        && value.len() <= 253
                        && value
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
                    if !ok {
                        return Err(invalid("service", "not a service name"));
                    }
                    set(&mut f.service, "service", value.to_ascii_lowercase())?;
                }
                "direction" => {
                    let d = match value.as_str() {
                        "outbound" => TapDirection::Outbound,
                        "inbound" => TapDirection::Inbound,
                        _ => return Err(invalid("direction", "outbound or inbound")),
                    };
                    set(&mut f.direction, "direction", d)?;
                }
                "method" => {
                    let ok = !value.is_empty()
                        && value.len() <= 32
                        && value.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-');
                    if !ok {
                        return Err(invalid("method", "not an HTTP method"));
                    }
                    set(&mut f.method, "method", value.to_ascii_uppercase())?;
                }
                "authority" => {
                    let ok = !value.is_empty()
                        && value.len() <= 255
                        && value.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
                    if !ok {
                        return Err(invalid("authority", "not a host[:port]"));
                    }
                    set(&mut f.authority, "authority", value.to_ascii_lowercase())?;
                }
                "path" => {
                    if !value.starts_with('/') {
                        return Err(invalid("path", "a path prefix starts with /"));
                    }
                    if value.len() > MAX_PATH_BYTES {
                        return Err(invalid("path", "longer than 512 bytes"));
                    }
                    if value.contains(['?', '#']) || value.bytes().any(|b| !b.is_ascii_graphic()) {
                        return Err(invalid(
                            "path",
                            "a path prefix has no query, fragment, space or control character",
                        ));
                    }
                    set(&mut f.path_prefix, "path", value)?;
                }
                "status" => {
                    let s = match value.as_str() {
                        "failure" => StatusFilter::Failure,
                        "success" => StatusFilter::Success,
                        v if v.len() == 3
                            && v.ends_with("xx")
                            && (b'1'..=b'5').contains(&v.as_bytes()[0]) =>
                        {
                            StatusFilter::Class(v.as_bytes()[0] - b'0')
                        }
                        _ => return Err(invalid("status", "1xx … 5xx, success or failure")),
                    };
                    set(&mut f.status, "status", s)?;
                }
                "endpoint" => {
                    let a = value
                        .parse()
                        .map_err(|_| invalid("endpoint", "not an IP:port"))?;
                    set(&mut f.endpoint, "endpoint", a)?;
                }
                "rate" => {
                    if rate_seen {
                        return Err(FilterError::Repeated("rate"));
                    }
                    rate_seen = true;
                    f.rate = match value.parse::<u32>() {
                        Ok(r) if (1..=MAX_RATE).contains(&r) => r,
                        _ => return Err(invalid("rate", "events per second, 1 to 10000")),
                    };
                }
                "events" => {
                    if events_seen {
                        return Err(FilterError::Repeated("events"));
                    }
                    events_seen = true;
                    f.ends_only = match value.as_str() {
                        "all" => false,
                        "end" => true,
                        _ => return Err(invalid("events", "all or end")),
                    };
                }
                other => return Err(FilterError::Unknown(other.chars().take(64).collect())),
            }
        }
        Ok(f)
    }

    /// The query string this filter reads back from (`rate` as given).
    pub fn to_query(&self) -> String {
        let mut q = String::new();
        let mut put = |k: &str, v: &str| {
            if !q.is_empty() {
                q.push('&');
            }
            let _ = write!(q, "{k}={}", encode(v));
        };
        if let Some(s) = &self.service {
            put("service", s);
        }
        if let Some(d) = self.direction {
            put("direction", d.as_str());
        }
        if let Some(m) = &self.method {
            put("method", m);
        }
        if let Some(a) = &self.authority {
            put("authority", a);
        }
        if let Some(p) = &self.path_prefix {
            put("path", p);
        }
        if let Some(s) = self.status {
            let v = match s {
                StatusFilter::Class(c) => format!("{c}xx"),
                StatusFilter::Failure => "failure".into(),
                StatusFilter::Success => "success".into(),
            };
            put("status", &v);
        }
        if let Some(e) = self.endpoint {
            put("endpoint", &e.to_string());
        }
        put("rate", &self.rate.to_string());
        if self.ends_only {
            put("events", "end");
        }
        q
    }

    /// Whether a request matches on what is known when it arrives.
    pub fn matches_request(
        &self,
        direction: TapDirection,
        service: &str,
        method: &str,
        authority: &str,
        path: &str,
    ) -> bool {
        self.direction.is_none_or(|d| d == direction)
            && self.service.as_deref().is_none_or(|s| s == service)
            && self.method.as_deref().is_none_or(|m| m == method)
            && self
                .authority
                .as_deref()
                .is_none_or(|a| a.eq_ignore_ascii_case(authority))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
    }

    /// Whether the filter needs the answer (or where it went) before it can say.
    pub fn waits_for_answer(&self) -> bool {
        self.status.is_some() || self.endpoint.is_some()
    }

    /// Whether it can say only at the response's end: success and failure count a gRPC
    /// status that comes in the trailers.
    pub fn waits_for_end(&self) -> bool {
        matches!(
            self.status,
            Some(StatusFilter::Success | StatusFilter::Failure)
        )
    }

    /// Events a request it takes sends: the rate is spent a request at a time.
    pub fn events_per_request(&self) -> u32 {
        if self.ends_only {
            1
        } else {
            3
        }
    }

    /// Whether an answer matches: `status` is `None` when there was none.
    pub fn matches_answer(
        &self,
        status: Option<u16>,
        failed: bool,
        endpoint: Option<SocketAddr>,
    ) -> bool {
        let status_ok = match self.status {
            None => true,
            Some(StatusFilter::Failure) => failed,
            Some(StatusFilter::Success) => !failed,
            Some(StatusFilter::Class(c)) => status.is_some_and(|s| s / 100 == u16::from(c)),
        };
        status_ok && self.endpoint.is_none_or(|e| endpoint == Some(e))
    }
}

fn set<T>(slot: &mut Option<T>, name: &'static str, v: T) -> Result<(), FilterError> {
    if slot.is_some() {
        return Err(FilterError::Repeated(name));
    }
    *slot = Some(v);
    Ok(())
}

/// Percent-decoding of a query value (`+` is a space).
fn decode(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encoding of a query value: unreserved characters and `/`, `:` stay.
pub fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// One line of a tap stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The first line: the subscription stands (`proxy`, `rate`).
    Subscribed,
    /// A request arrived (sent when its answer comes, with a filter on the answer).
    Start,
    /// Its response headers came, or the proxy answered it itself.
    Headers,
    /// Its response ended, or it was given up.
    End,
    /// The last line: why the stream ends (`reason`).
    Closed,
}

/// A tap line. Every request event repeats the request's own fields, so a reader that sees
/// only `end` lines (as `weft top` does) needs no state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TapEvent {
    #[serde(rename = "type")]
    pub kind: Option<EventKind>,
    /// The proxy's node name.
    #[serde(default)]
    pub proxy: String,
    /// The request's number at its proxy: `proxy` and `id` name it.
    #[serde(default)]
    pub id: u64,
    /// When this event happened, Unix microseconds.
    #[serde(default)]
    pub unix_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<TapDirection>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authority: String,
    /// Without its query (which may hold secrets), at most 512 bytes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// The client's address: an app on this node, a peer proxy, an outside caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SocketAddr>,
    /// The pod at `source`, when discovery knows it by its address alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    /// The calling proxy's mesh identity (inbound, over mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `start`: the request's header names, with values only for names allowed in config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers: Vec<(String, Option<String>)>,
    /// `headers`: the response's, as for the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers: Vec<(String, Option<String>)>,
    /// From `headers` on: the answer's status (none when the request got none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The instance the (last) attempt went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<SocketAddr>,
    /// Attempts beyond the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// From arrival to the response headers, microseconds (what the latency metrics count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// `end`: from arrival to the response's end, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// `end`: response body bytes sent to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<u32>,
    /// `end`: as the metrics classify it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    /// The proxy's error (`weft-error`), or what cut the response short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `subscribed`: events per second this proxy allows the subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    /// `closed`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests;
