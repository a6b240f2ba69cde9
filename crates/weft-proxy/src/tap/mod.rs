//! Tap: live copies of the requests a subscriber's filter matches, as newline-delimited
//! events (`weft_core::tap`). Tapping never slows traffic: with no subscriber a request
//! pays one atomic load; with one, a filter check and a token bucket, and only the
//! requests the bucket admits are described. A subscriber's buffer is bounded, and one
//! that falls behind is dropped and told why, so nothing waits on a slow reader.

mod pods;
mod request;
mod serve;
mod stream;
mod subscriber;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::HeaderName;
use http::Request;
use tokio::sync::{mpsc, oneshot};
use weft_core::config::TapConfig;
use weft_core::tap::{TapDirection, TapFilter};
use weft_discovery::Discover;
use weft_metrics::Gauge;

use crate::context::Ctx;
use crate::shared::Shared;

pub(crate) use request::{Answer, Tapped};
pub(crate) use serve::{remote, subscription};
pub(crate) use stream::TapStream;
use subscriber::Subscriber;

pub(crate) struct Taps {
    /// Subscribers now: the request path reads only this while there are none.
    active: AtomicUsize,
    /// The same, exported.
    gauge: Gauge,
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
    /// The pods discovery knows by address, for events' `source_name`.
    pods: pods::Pods,
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

/// What the request's way knows of it by the time it is tapped, beyond its arrival.
pub(crate) struct Known {
    pub trace: Option<weft_core::trace::TraceId>,
    /// Inbound: the instance the peer chose.
    pub endpoint: Option<SocketAddr>,
    /// Inbound: the calling proxy's identity.
    pub peer: Option<Arc<str>>,
}

impl Taps {
    pub(crate) fn new(
        node: &str,
        config: &TapConfig,
        discovery: Arc<dyn Discover>,
        gauge: Gauge,
    ) -> Self {
        Self {
            active: AtomicUsize::new(0),
            gauge,
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
            pods: pods::Pods::new(Arc::clone(&discovery)),
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

    /// The request's tap, when a subscriber's filter takes it and its rate allows (or, for
    /// a filter on the answer, may take it); its `start` event goes out now.
    #[inline]
    pub(crate) fn start<B>(
        self: &Arc<Self>,
        arrival: Arrival<'_, B>,
        known: impl FnOnce() -> Known,
    ) -> Option<Box<Tapped>> {
        if self.active.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.admit(arrival, known())
    }

    #[cold]
    fn admit<B>(self: &Arc<Self>, a: Arrival<'_, B>, known: Known) -> Option<Box<Tapped>> {
        let path = a.req.uri().path();
        let method = a.req.method().as_str();
        let subscribers = self.subscribers.load();
        // A filter on the answer is charged its rate when the answer decides; until then
        // the request is only held, within the look-ahead's own bound.
        let taken: Vec<(Arc<Subscriber>, bool)> = subscribers
            .iter()
            .filter(|s| {
                s.filter
                    .matches_request(a.direction, a.service, method, a.authority, path)
            })
            .filter_map(|s| {
                let decided = !s.filter.waits_for_answer();
                let admitted = if decided {
                    s.take(a.start)
                } else {
                    s.look_ahead(a.start)
                };
                admitted.then(|| (Arc::clone(s), decided))
            })
            .collect();
        if taken.is_empty() {
            return None;
        }
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let source_name = self.pods.at(a.source.ip());
        let mut tapped = Box::new(Tapped::new(Arc::clone(self), id, taken, a, known));
        tapped.begin(source_name);
        Some(tapped)
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
        let sub = Arc::new(Subscriber::new(id, filter, tx, close_tx, Instant::now()));
        let mut next = (*now).clone();
        next.push(sub);
        self.active.store(next.len(), Ordering::Relaxed);
        self.gauge
            .set(i64::try_from(next.len()).unwrap_or(i64::MAX));
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
        gone.gone.store(true, Ordering::Relaxed);
        if let Some(reason) = reason {
            tracing::info!(subscriber = id, %reason, "tap subscriber dropped");
            let close = gone.close.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(c) = close {
                let _ = c.send(reason);
            }
        }
        let next: Vec<_> = now.iter().filter(|s| s.id != id).cloned().collect();
        self.active.store(next.len(), Ordering::Relaxed);
        self.gauge
            .set(i64::try_from(next.len()).unwrap_or(i64::MAX));
        self.subscribers.store(Arc::new(next));
    }

    /// Ends every subscription, saying why (the proxy drains: a tap's stream would
    /// otherwise hold its connection open to the end of the grace).
    pub(crate) fn close_all(&self, reason: &str) {
        let ids: Vec<u64> = self.subscribers.load().iter().map(|s| s.id).collect();
        for id in ids {
            self.unsubscribe(id, Some(reason.to_string()));
        }
    }

    pub(crate) fn node(&self) -> &str {
        &self.node
    }
}

/// The request's tap, when a subscriber takes it: `ctx` knows its service, its trace and,
/// inbound, the endpoint it is for; `peer` is the calling proxy, inbound.
pub(crate) fn arrived<B>(
    shared: &Shared,
    ctx: &Ctx,
    direction: TapDirection,
    (source, peer): (SocketAddr, Option<Arc<str>>),
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
    shared.taps.start(arrival, || Known {
        trace: ctx.trace.as_ref().map(|t| t.trace_id()),
        endpoint: ctx.endpoint.as_ref().map(|e| e.endpoint.addr),
        peer,
    })
}
