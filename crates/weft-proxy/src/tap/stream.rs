//! A subscriber's stream, as a response body: its `subscribed` line, the events, and a
//! `closed` line when the proxy drops it; an empty line when it has been quiet a while, so
//! a subscriber that went away is found out. Dropping the body (the subscriber went away)
//! takes the subscriber off.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use weft_core::tap::{EventKind, TapEvent, HEARTBEAT};

use super::Taps;

pub(crate) struct TapStream {
    taps: Arc<Taps>,
    id: u64,
    first: Option<Bytes>,
    events: mpsc::Receiver<Bytes>,
    close: Option<oneshot::Receiver<String>>,
    done: bool,
    heartbeat: tokio::time::Interval,
}

impl TapStream {
    pub(super) fn new(
        taps: Arc<Taps>,
        id: u64,
        rate: u32,
        events: mpsc::Receiver<Bytes>,
        close: oneshot::Receiver<String>,
    ) -> Self {
        let first = control(&taps, EventKind::Subscribed, |e| e.rate = Some(rate));
        Self {
            taps,
            id,
            first: Some(first),
            events,
            close: Some(close),
            done: false,
            heartbeat: heartbeat(),
        }
    }

    /// The next line; `None` once the stream has ended.
    pub(crate) fn poll_line(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(first));
        }
        if self.done {
            return Poll::Ready(None);
        }
        // Events already buffered go before the reason the stream ends.
        if let Poll::Ready(Some(line)) = self.events.poll_recv(cx) {
            self.heartbeat.reset();
            return Poll::Ready(Some(line));
        }
        if let Poll::Ready(Some(line)) = self.poll_close(cx) {
            return Poll::Ready(Some(line));
        }
        match self.heartbeat.poll_tick(cx) {
            Poll::Ready(_) => Poll::Ready(Some(Bytes::from_static(b"\n"))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The reason the proxy dropped the subscriber, as the stream's last line.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let Some(close) = self.close.as_mut() else {
            return Poll::Pending;
        };
        match Pin::new(close).poll(cx) {
            Poll::Ready(Ok(reason)) => {
                self.done = true;
                let taps = Arc::clone(&self.taps);
                Poll::Ready(Some(control(&taps, EventKind::Closed, |e| {
                    e.reason = Some(reason);
                })))
            }
            // Taken off without a reason: nothing more will come.
            Poll::Ready(Err(_)) => {
                self.close = None;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for TapStream {
    fn drop(&mut self) {
        self.taps.unsubscribe(self.id, None);
    }
}

/// Ticks every [`HEARTBEAT`], the first a whole period from now.
pub(crate) fn heartbeat() -> tokio::time::Interval {
    let start = tokio::time::Instant::now() + HEARTBEAT;
    let mut i = tokio::time::interval_at(start, HEARTBEAT);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    i
}

fn control(taps: &Taps, kind: EventKind, fill: impl FnOnce(&mut TapEvent)) -> Bytes {
    let mut e = TapEvent {
        kind: Some(kind),
        proxy: taps.node().to_string(),
        ..TapEvent::default()
    };
    fill(&mut e);
    let mut v = serde_json::to_vec(&e).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}
