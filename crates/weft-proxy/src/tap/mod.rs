//! Tap: live copies of the requests a subscriber's filter matches, as newline-delimited
//! events (`weft_core::tap`). Tapping never slows traffic: with no subscriber a request
//! pays one atomic load; with one, a filter check and a token bucket, and only the
//! requests the bucket admits are described. A subscriber's buffer is bounded, and one
//! that falls behind is dropped and told why, so nothing waits on a slow reader.

mod request;
mod serve;
mod stream;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::HeaderName;
use http::Request;
use tokio::sync::{mpsc, oneshot};
use weft_core::config::TapConfig;
use weft_core::tap::{TapDirection, TapFilter};
use weft_discovery::Discover;

use crate::context::Ctx;
use crate::shared::Shared;

pub(crate) use request::{Answer, Tapped};
pub(crate) use serve::{remote, subscription};
pub(crate) use stream::TapStream;

/// Events a request may send (start, headers, end): a request is admitted whole or not at
/// all, so a reader never sees half of one.
const EVENTS_PER_REQUEST: f64 = 3.0;

pub(crate) struct Taps {
    /// Subscribers now: the request path reads only this while there are none.
    active: AtomicUsize,
    subscribers: ArcSwap<Vec<Arc<Subscriber>>>,
    /// Held while the list changes (readers never take it).
    changing: Mutex<()>,
    next_subscriber: AtomicU64,
    next_request: AtomicU64,
    /// The node's name, which every event carries.
    node: Arc<str>,
    /// Header names whose values are shown.
    shown: Vec<HeaderName>,
    max_subscribers: usize,
    buffer: usize,
    /// What a filter's service is checked against.
    discovery: Arc<dyn Discover>,
}

/// What a request is known by when it arrives, for the filters and its `start` event.
pub(crate) struct Arrival<'a, B> {
    pub direction: TapDirection,
    pub service: &'a str,
    pub authority: &'a str,
    pub req: &'a Request<B>,
    pub source: SocketAddr,
    pub start: Instant,
}

impl Taps {
    pub(crate) fn new(node: &str, config: &TapConfig, discovery: Arc<dyn Discover>) -> Self {
        Self {
            active: AtomicUsize::new(0),
            subscribers: ArcSwap::from_pointee(Vec::new()),
            changing: Mutex::new(()),
            next_subscriber: AtomicU64::new(1),
            next_request: AtomicU64::new(1),
            node: node.into(),
            shown: config
                .show_headers
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok())
                .collect(),
            max_subscribers: config.max_subscribers,
            buffer: config.buffer,
            discovery,
        }
    }

    /// Whether discovery knows `service`: a filter naming another could never match.
    pub(crate) fn knows(&self, service: &str) -> bool {
        self.discovery
            .snapshot()
            .iter()
            .any(|(name, _)| name.as_str() == service)
    }

    /// The request's tap, when a subscriber's filter takes it and its rate allows.
    #[inline]
    pub(crate) fn start<B>(self: &Arc<Self>, arrival: Arrival<'_, B>) -> Option<Box<Tapped>> {
        if self.active.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.admit(arrival)
    }

    #[cold]
    fn admit<B>(self: &Arc<Self>, a: Arrival<'_, B>) -> Option<Box<Tapped>> {
        let path = a.req.uri().path();
        let method = a.req.method().as_str();
        let subscribers = self.subscribers.load();
        let taken: Vec<Arc<Subscriber>> = subscribers
            .iter()
            .filter(|s| {
                s.filter
                    .matches_request(a.direction, a.service, method, a.authority, path)
                    && s.take(a.start)
            })
            .cloned()
            .collect();
        if taken.is_empty() {
            return None;
        }
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        Some(Box::new(Tapped::new(Arc::clone(self), id, taken, a)))
    }

    /// A new subscriber, or why not: its stream's first line says it stands.
    pub(crate) fn subscribe(self: &Arc<Self>, filter: TapFilter) -> Result<TapStream, String> {
        let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.subscribers.load_full();
        if now.len() >= self.max_subscribers {
            return Err(format!(
                "this proxy has {} tap subscribers already, its most (tap.max_subscribers)",
                now.len()
            ));
        }
        let (tx, rx) = mpsc::channel(self.buffer);
        let (close_tx, close_rx) = oneshot::channel();
        let id = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        let rate = filter.rate;
        let sub = Arc::new(Subscriber {
            id,
            bucket: Mutex::new(Bucket::new(rate, Instant::now())),
            filter,
            tx,
            close: Mutex::new(Some(close_tx)),
        });
        let mut next = (*now).clone();
        next.push(sub);
        self.active.store(next.len(), Ordering::Relaxed);
        self.subscribers.store(Arc::new(next));
        tracing::info!(subscriber = id, rate, "tap subscriber attached");
        Ok(TapStream::new(Arc::clone(self), id, rate, rx, close_rx))
    }

    /// Takes the subscriber off; `reason`, when given, is its stream's last line.
    pub(crate) fn unsubscribe(&self, id: u64, reason: Option<String>) {
        let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.subscribers.load_full();
        let Some(gone) = now.iter().find(|s| s.id == id) else {
            return;
        };
        if let Some(reason) = reason {
            tracing::info!(subscriber = id, %reason, "tap subscriber dropped");
            let close = gone.close.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(c) = close {
                let _ = c.send(reason);
            }
        }
        let next: Vec<_> = now.iter().filter(|s| s.id != id).cloned().collect();
        self.active.store(next.len(), Ordering::Relaxed);
        self.subscribers.store(Arc::new(next));
    }

    pub(crate) fn node(&self) -> &str {
        &self.node
    }
}

pub(crate) struct Subscriber {
    id: u64,
    filter: TapFilter,
    bucket: Mutex<Bucket>,
    tx: mpsc::Sender<Bytes>,
    /// Says why the subscriber was dropped, once.
    close: Mutex<Option<oneshot::Sender<String>>>,
}

impl Subscriber {
    /// Whether the rate allows a whole request's events now.
    fn take(&self, now: Instant) -> bool {
        self.bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(now, EVENTS_PER_REQUEST)
    }

    /// Sends a line, never waiting: a full buffer drops the subscriber.
    fn send(&self, taps: &Taps, line: &Bytes) {
        match self.tx.try_send(line.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => taps.unsubscribe(
                self.id,
                Some(format!(
                    "the subscriber read too slowly: {} events were waiting (tap.buffer)",
                    self.tx.max_capacity()
                )),
            ),
            Err(mpsc::error::TrySendError::Closed(_)) => taps.unsubscribe(self.id, None),
        }
    }
}

/// Events per second, with a second's worth of burst.
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate);
        Self {
            tokens: rate.max(EVENTS_PER_REQUEST),
            rate,
            last: now,
        }
    }

    fn take(&mut self, now: Instant, n: f64) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate.max(n));
        self.last = self.last.max(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// The request's tap, when a subscriber takes it: `ctx` knows its service, its trace and,
/// inbound, the endpoint it is for.
pub(crate) fn arrived<B>(
    shared: &Shared,
    ctx: &Ctx,
    direction: TapDirection,
    source: SocketAddr,
    req: &Request<B>,
) -> Option<Box<Tapped>> {
    let arrival = Arrival {
        direction,
        service: ctx.service.name.as_str(),
        authority: &ctx.authority,
        req,
        source,
        start: ctx.start,
    };
    let mut tapped = shared.taps.start(arrival)?;
    if let Some(t) = &ctx.trace {
        tapped.traced(t.trace_id());
    }
    tapped.source_named(pod_at(shared, source));
    if let Some(e) = &ctx.endpoint {
        tapped.sent_to(e.endpoint.addr);
    }
    Some(tapped)
}

/// The pod discovery knows at `source`'s address, when exactly one is (on Kubernetes a
/// pod's address is its own; on a demo node every instance shares one).
fn pod_at(shared: &Shared, source: SocketAddr) -> Option<String> {
    let mut found: Option<String> = None;
    for side in [&shared.outbound, &shared.inbound] {
        for service in side.all() {
            for e in service.endpoints().list.iter() {
                if e.endpoint.addr.ip() != source.ip() {
                    continue;
                }
                let pod = e.endpoint.labels.get("pod")?;
                match &found {
                    Some(p) if p != pod => return None,
                    _ => found = Some(pod.clone()),
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_bucket_admits_whole_requests_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(30, t0);
        let first: usize = (0..100).filter(|_| b.take(t0, 3.0)).count();
        assert_eq!(first, 10, "a second's burst");
        let later = t0 + Duration::from_millis(500);
        let more: usize = (0..100).filter(|_| b.take(later, 3.0)).count();
        assert_eq!(more, 5, "half a second's refill");
        // A rate below one request's events still lets one through a second.
        let mut slow = Bucket::new(1, t0);
        assert!(slow.take(t0, 3.0));
        assert!(!slow.take(t0 + Duration::from_secs(1), 3.0));
        assert!(slow.take(t0 + Duration::from_secs(3), 3.0));
    }
}
