//! The control-plane source: each service a proxy routes to is one Destination API stream
//! from `weft control`, all multiplexed on one HTTP/2 connection.
//!
//! A proxy keeps routing on its last known endpoints while the control plane is away; the
//! stream is reopened with jittered backoff, and the snapshot that opens every stream
//! replaces the old state in one step, so there is no gap and no stale leftover.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::Channel;
use weft_api::{DestinationClient, GetDestination};
use weft_core::route::RoutesState;
use weft_core::{EndpointSet, ServiceName};

use crate::updates::Followed;
use crate::{Discover, Resolution};

/// How long an unwatched service's stream stays open, so a name asked for again soon (an
/// unknown one, say) does not reopen a stream per request.
const LINGER: Duration = Duration::from_secs(5);
/// Services followed at once: a node's apps call hundreds at most. Past it, lingering
/// streams nobody watches are closed to make room; if every one is watched, a new name is
/// not looked up: a flood of made-up `Host` names cannot open streams and tasks without
/// end. Below the control plane's streams per connection (4096), so a flood here never
/// makes real names queue there.
pub const MAX_WATCHED: usize = 2_000;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub type ErrorHook = Arc<dyn Fn() + Send + Sync>;

pub struct ControlPlaneDiscovery {
    channel: Channel,
    node: String,
    subs: Arc<Mutex<Subs>>,
    on_error: ErrorHook,
    max_watched: usize,
    /// The services' routes, one stream per service however many ask.
    routes: crate::control_routes::RoutesStreams,
}

type Subs = HashMap<ServiceName, Sub>;

/// One followed service: its state, and the stop for its stream when it is evicted.
struct Sub {
    tx: watch::Sender<Resolution>,
    evicted: Arc<tokio::sync::Notify>,
}

impl ControlPlaneDiscovery {
    /// Streams over `channel` (see [`weft_api::channel`]); nothing connects until a service
    /// is asked for.
    pub fn new(channel: Channel, node: &str, on_error: ErrorHook) -> Arc<Self> {
        Self::with_max_watched(channel, node, on_error, MAX_WATCHED)
    }

    /// [`Self::new`], following at most `max_watched` services at once.
    pub fn with_max_watched(
        channel: Channel,
        node: &str,
        on_error: ErrorHook,
        max_watched: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            channel,
            node: node.to_string(),
            subs: Default::default(),
            on_error,
            max_watched,
            routes: Default::default(),
        })
    }

    /// Services followed now (streams open or lingering).
    pub fn followed(&self) -> usize {
        self.subs.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Discover for ControlPlaneDiscovery {
    fn watch(&self, service: &ServiceName) -> Option<watch::Receiver<Resolution>> {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sub) = subs.get(service) {
            return Some(sub.tx.subscribe());
        }
        if subs.len() >= self.max_watched {
            subs.retain(|_, sub| {
                let lingering = sub.tx.receiver_count() == 0;
                if lingering {
                    sub.evicted.notify_one();
                }
                !lingering
            });
            if subs.len() >= self.max_watched {
                (self.on_error)();
                tracing::warn!(service = %service, max = self.max_watched, "discovery: every followed service is in use; a new name is not looked up");
                return None;
            }
        }
        let (tx, rx) = watch::channel(Resolution::Pending);
        let evicted = Arc::new(tokio::sync::Notify::new());
        subs.insert(
            service.clone(),
            Sub {
                tx: tx.clone(),
                evicted: Arc::clone(&evicted),
            },
        );
        tokio::spawn(follow(
            self.channel.clone(),
            GetDestination {
                name: service.to_string(),
                port: 0,
                node: self.node.clone(),
            },
            service.clone(),
            tx,
            Arc::clone(&self.subs),
            Arc::clone(&self.on_error),
            evicted,
        ));
        Some(rx)
    }

    fn routes(&self, service: &ServiceName) -> watch::Receiver<RoutesState> {
        self.routes.follow(&self.channel, &self.node, service)
    }

    fn snapshot(&self) -> Vec<(ServiceName, EndpointSet)> {
        let subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = subs
            .iter()
            .filter_map(|(name, sub)| match &*sub.tx.borrow() {
                Resolution::Endpoints(set) => Some((name.clone(), set.clone())),
                _ => None,
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Keeps one service's stream open while anyone watches it, and not after it is evicted.
async fn follow(
    channel: Channel,
    request: GetDestination,
    name: ServiceName,
    tx: watch::Sender<Resolution>,
    subs: Arc<Mutex<Subs>>,
    on_error: ErrorHook,
    evicted: Arc<tokio::sync::Notify>,
) {
    tokio::select! {
        () = follow_until_unwatched(channel, request, &name, &tx, &subs, on_error) => {}
        () = evicted.notified() => {}
    }
}

async fn follow_until_unwatched(
    channel: Channel,
    request: GetDestination,
    name: &ServiceName,
    tx: &watch::Sender<Resolution>,
    subs: &Mutex<Subs>,
    on_error: ErrorHook,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let outcome = tokio::select! {
            r = stream(channel.clone(), request.clone(), tx, &mut backoff) => Some(r),
            _ = unwatched(tx, name, subs) => None,
        };
        let Some(outcome) = outcome else { return };
        match outcome {
            // Nothing to retry: the answer (does not exist) stands until nobody asks.
            Ok(Ended::Refused) => return unwatched(tx, name, subs).await,
            Ok(Ended::Closed) => {
                tracing::info!(service = %name, "control plane closed the destination stream; reopening")
            }
            Err(e) => {
                on_error();
                tracing::warn!(service = %name, error = %e, retry_in = ?backoff, "destination stream failed; keeping last known endpoints");
            }
        }
        // Full jitter keeps a fleet of proxies from reconnecting in step.
        let pause = backoff.mul_f64(0.5 + fastrand::f64() * 0.5);
        backoff = (backoff * 2).min(BACKOFF_MAX);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = unwatched(tx, name, subs) => return,
        }
    }
}

/// Resolves once nobody has watched the service for [`LINGER`], having removed it.
async fn unwatched(tx: &watch::Sender<Resolution>, name: &ServiceName, subs: &Mutex<Subs>) {
    loop {
        tx.closed().await;
        tokio::time::sleep(LINGER).await;
        let mut subs = subs.lock().unwrap_or_else(|e| e.into_inner());
        // Under the lock no new watcher can appear between the check and the removal. The
        // entry may be another's by now (this one evicted, the name asked for again).
        let ours = subs.get(name).is_some_and(|s| s.tx.same_channel(tx));
        if !ours {
            return;
        }
        if tx.receiver_count() == 0 {
            subs.remove(name);
            return;
        }
    }
}

/// How a stream that did not fail ended.
enum Ended {
    /// The control plane closed it (restarting, say): reopen.
    Closed,
    /// The control plane refused the name as malformed: it will never know it.
    Refused,
}

#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("{0}")]
    Status(#[from] tonic::Status),
    #[error("{0}")]
    Wire(#[from] weft_api::BadEndpoint),
}

/// One stream's life: applies updates until it ends or fails.
async fn stream(
    channel: Channel,
    request: GetDestination,
    tx: &watch::Sender<Resolution>,
    backoff: &mut Duration,
) -> Result<Ended, StreamError> {
    let mut client = DestinationClient::new(channel);
    let mut updates = match client.get(request).await {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::InvalidArgument => {
            tx.send_replace(Resolution::DoesNotExist);
            return Ok(Ended::Refused);
        }
        Err(s) => return Err(s.into()),
    };
    let mut followed = Followed::default();
    while let Some(update) = updates.message().await? {
        *backoff = BACKOFF_MIN;
        let Some(next) = followed.apply(update)? else {
            continue;
        };
        tx.send_if_modified(|cur| {
            let changed = *cur != next;
            if changed {
                *cur = next;
            }
            changed
        });
    }
    Ok(Ended::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn made_up_names_cannot_grow_what_is_followed() {
        // Nothing listens there: each stream fails and retries, as against a control plane
        // that is away; what is followed is bounded all the same.
        let channel = weft_api::channel::connect_lazy("127.0.0.1:1", None).unwrap();
        let errors = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&errors);
        let on_error: ErrorHook = Arc::new(move || {
            counted.fetch_add(1, Ordering::Relaxed);
        });
        let d = ControlPlaneDiscovery::with_max_watched(channel, "node-1", on_error, 8);
        // A flood of names, each asked for once: the lingering ones make room.
        for i in 0..100 {
            drop(d.watch(&ServiceName::new(&format!("junk-{i}"))));
            assert!(d.followed() <= 8, "{} followed", d.followed());
        }
        // Names in use are kept: with 8 watched, a ninth is not looked up, and says so.
        let before = errors.load(Ordering::Relaxed);
        let held: Vec<_> = (0..8)
            .map(|i| d.watch(&ServiceName::new(&format!("svc-{i}"))).unwrap())
            .collect();
        assert!(d.watch(&ServiceName::new("one-more")).is_none());
        assert!(errors.load(Ordering::Relaxed) > before);
        assert!(d.watch(&ServiceName::new("svc-0")).is_some());
        drop(held);
        assert!(d.watch(&ServiceName::new("one-more")).is_some());
    }
}
