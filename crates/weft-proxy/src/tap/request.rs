//! One tapped request: what it arrived as, the subscribers that took it, and its events as
//! the request's way reaches them (arrival, response headers, end).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderMap;
use weft_core::headers::{GRPC_STATUS, WEFT_REQUEST_ID};
use weft_core::tap::{EventKind, TapEvent, MAX_PATH_BYTES, NEVER_SHOWN};

use super::{Arrival, Known, Subscriber, Taps};

/// Header names listed in an event, at most: what a client sends cannot make events large.
const MAX_HEADERS_LISTED: usize = 32;

pub(crate) struct Tapped {
    taps: Arc<Taps>,
    subscribers: Vec<Watching>,
    /// The request's fields, repeated in each of its events.
    event: TapEvent,
    start: Instant,
    wall: SystemTime,
    /// The lines sent so far, for subscribers that learn only later whether the request
    /// is theirs.
    start_line: Option<Bytes>,
    headers_line: Option<Bytes>,
    request_headers: Vec<(String, Option<String>)>,
    /// Response body bytes sent so far.
    pub bytes: u64,
}

struct Watching {
    subscriber: Arc<Subscriber>,
    /// Its filter has taken the request (and its rate paid for it); until then it waits
    /// for the answer, or the end, to say.
    decided: bool,
}

impl Watching {
    /// Sends `line` unless the subscriber asked for `end` events only.
    fn send(&self, taps: &Taps, line: &Bytes, end: bool) {
        if end || !self.subscriber.filter.ends_only {
            self.subscriber.send(taps, line);
        }
    }
}

impl Tapped {
    pub(super) fn new<B>(
        taps: Arc<Taps>,
        id: u64,
        subscribers: Vec<(Arc<Subscriber>, bool)>,
        a: Arrival<'_, B>,
        known: Known,
    ) -> Self {
        let headers = a.req.headers();
        // The proxy's own trace when it has joined or started one; the caller's otherwise.
        let trace_id = known.trace.map(|t| t.hex()).or_else(|| {
            weft_core::trace::extract(headers)
                .and_then(|i| i.parent)
                .map(|(t, _)| t.hex())
        });
        let event = TapEvent {
            proxy: taps.node.to_string(),
            id,
            direction: Some(a.direction),
            service: a.service.to_string(),
            method: a.req.method().as_str().to_string(),
            authority: a.authority.to_string(),
            path: bounded(a.req.uri().path()).to_string(),
            source: Some(a.source),
            peer_identity: known.peer.map(|p| p.to_string()),
            endpoint: known.endpoint,
            request_id: headers
                .get(WEFT_REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.len() <= 128)
                .map(str::to_string),
            trace_id,
            ..TapEvent::default()
        };
        Self {
            wall: SystemTime::now() - a.start.elapsed(),
            start: a.start,
            subscribers: subscribers
                .into_iter()
                .map(|(subscriber, decided)| Watching {
                    subscriber,
                    decided,
                })
                .collect(),
            event,
            start_line: None,
            headers_line: None,
            request_headers: listed(&taps, headers),
            bytes: 0,
            taps,
        }
    }

    /// Its `start` event, once everything known at arrival is in: sent to the subscribers
    /// that have taken the request, kept for those still waiting.
    pub(super) fn begin(&mut self, source_name: Option<String>) {
        self.event.source_name = source_name;
        let mut start = self.event.clone();
        start.kind = Some(EventKind::Start);
        start.unix_us = unix_us(self.wall);
        start.request_headers = std::mem::take(&mut self.request_headers);
        let line = line(&start);
        for w in self.subscribers.iter().filter(|w| w.decided) {
            w.send(&self.taps, &line, false);
        }
        self.start_line = Some(line);
    }

    /// The response's headers came (or the proxy answered itself): `status` is `None`
    /// when there was no answer.
    pub(crate) fn answered(&mut self, at: Instant, answer: Answer<'_>) {
        self.event.status = answer.status;
        if answer.endpoint.is_some() {
            self.event.endpoint = answer.endpoint;
        }
        self.event.retries = Some(answer.retries);
        self.event.error = answer.error.map(str::to_string);
        self.event.grpc_status = answer
            .headers
            .and_then(|h| h.get(GRPC_STATUS))
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let latency = at.saturating_duration_since(self.start);
        self.event.latency_us = Some(micros(latency));
        let mut e = self.event.clone();
        e.kind = Some(EventKind::Headers);
        e.unix_us = unix_us(self.wall + latency);
        if let Some(h) = answer.headers {
            e.response_headers = listed(&self.taps, h);
        }
        let line = line(&e);
        let (status, endpoint) = (e.status, e.endpoint);
        let taps = Arc::clone(&self.taps);
        let start_line = self.start_line.clone();
        self.subscribers.retain_mut(|w| {
            if w.decided {
                w.send(&taps, &line, false);
                return true;
            }
            let f = &w.subscriber.filter;
            if f.waits_for_end() {
                return f.endpoint.is_none_or(|e| endpoint == Some(e));
            }
            if !f.matches_answer(status, answer.failed, endpoint) || !w.subscriber.take(at) {
                return false;
            }
            w.decided = true;
            if let Some(s) = &start_line {
                w.send(&taps, s, false);
            }
            w.send(&taps, &line, false);
            true
        });
        self.headers_line = Some(line);
    }

    /// The response ended (or was given up, `error` saying why).
    pub(crate) fn end(
        mut self,
        at: Instant,
        success: bool,
        trailers: Option<&HeaderMap>,
        error: &str,
    ) {
        if self.headers_line.is_none() {
            // Given up before any answer: its headers event says so.
            let answer = Answer {
                status: None,
                failed: true,
                endpoint: self.event.endpoint,
                retries: self.event.retries.unwrap_or(0),
                headers: None,
                error: Some(error),
            };
            self.answered(at, answer);
        }
        if let Some(g) = trailers
            .and_then(|t| t.get(GRPC_STATUS))
            .and_then(|v| v.to_str().ok()?.parse().ok())
        {
            self.event.grpc_status = Some(g);
        }
        let took = at.saturating_duration_since(self.start);
        let mut e = std::mem::take(&mut self.event);
        e.kind = Some(EventKind::End);
        e.unix_us = unix_us(self.wall + took);
        e.duration_us = Some(micros(took));
        e.bytes = Some(self.bytes);
        e.success = Some(success);
        if !error.is_empty() {
            e.error = Some(error.to_string());
        }
        let line = line(&e);
        for w in &self.subscribers {
            if !w.decided {
                let f = &w.subscriber.filter;
                if !f.matches_answer(e.status, !success, e.endpoint) || !w.subscriber.take(at) {
                    continue;
                }
                for earlier in [&self.start_line, &self.headers_line].into_iter().flatten() {
                    w.send(&self.taps, earlier, false);
                }
            }
            w.send(&self.taps, &line, true);
        }
    }
}

/// What the answer was, for [`Tapped::answered`].
pub(crate) struct Answer<'a> {
    pub status: Option<u16>,
    /// As the metrics classify it.
    pub failed: bool,
    pub endpoint: Option<SocketAddr>,
    pub retries: u32,
    pub headers: Option<&'a HeaderMap>,
    /// The proxy's own answer's cause.
    pub error: Option<&'a str>,
}

/// The header names, each with its value when config shows it (credentials never).
fn listed(taps: &Taps, headers: &HeaderMap) -> Vec<(String, Option<String>)> {
    headers
        .iter()
        .take(MAX_HEADERS_LISTED)
        .map(|(name, value)| {
            let secret = NEVER_SHOWN.contains(&name.as_str());
            let shown = !secret && taps.shown.contains(name);
            let value = shown
                .then(|| value.to_str().ok().map(|v| bounded(v).to_string()))
                .flatten();
            (name.as_str().to_string(), value)
        })
        .collect()
}

/// At most [`MAX_PATH_BYTES`], cut on a character boundary.
fn bounded(s: &str) -> &str {
    if s.len() <= MAX_PATH_BYTES {
        return s;
    }
    let mut end = MAX_PATH_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn line(e: &TapEvent) -> Bytes {
    let mut v = serde_json::to_vec(e).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, micros)
}
