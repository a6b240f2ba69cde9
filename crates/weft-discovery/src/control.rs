//! The control-plane source: each service a proxy routes to is one Destination API stream
//! from `weft control`, all multiplexed on one HTTP/2 connection.
//!
//! A proxy keeps routing on its last known endpoints while the control plane is away; the
//! stream is reopened with jittered backoff, and the snapshot that opens every stream
//! replaces the old state in one step, so there is no gap and no stale leftover.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::Channel;
use weft_api::{from_wire, DestinationClient, GetDestination, Kind};
use weft_core::{Endpoint, EndpointSet, ServiceName};

use crate::{Discover, Resolution};

/// How long an unwatched service's stream stays open, so a name asked for again soon (an
/// unknown one, say) does not reopen a stream per request.
const LINGER: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub type ErrorHook = Arc<dyn Fn() + Send + Sync>;

pub struct ControlPlaneDiscovery {
    channel: Channel,
    node: String,
    subs: Arc<Mutex<HashMap<ServiceName, watch::Sender<Resolution>>>>,
    on_error: ErrorHook,
}

impl ControlPlaneDiscovery {
    /// Streams over `channel` (see [`weft_api::channel`]); nothing connects until a service
    /// is asked for.
    pub fn new(channel: Channel, node: &str, on_error: ErrorHook) -> Arc<Self> {
        Arc::new(Self {
            channel,
            node: node.to_string(),
            subs: Default::default(),
            on_error,
        })
    }
}

impl Discover for ControlPlaneDiscovery {
    fn watch(&self, service: &ServiceName) -> Option<watch::Receiver<Resolution>> {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = subs.get(service) {
            return Some(tx.subscribe());
        }
        let (tx, rx) = watch::channel(Resolution::Pending);
        subs.insert(service.clone(), tx.clone());
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
        ));
        Some(rx)
    }

    fn snapshot(&self) -> Vec<(ServiceName, EndpointSet)> {
        let subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = subs
            .iter()
            .filter_map(|(name, tx)| match &*tx.borrow() {
                Resolution::Endpoints(set) => Some((name.clone(), set.clone())),
                _ => None,
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Keeps one service's stream open while anyone watches it.
async fn follow(
    channel: Channel,
    request: GetDestination,
    name: ServiceName,
    tx: watch::Sender<Resolution>,
    subs: Arc<Mutex<HashMap<ServiceName, watch::Sender<Resolution>>>>,
    on_error: ErrorHook,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let outcome = tokio::select! {
            r = stream(channel.clone(), request.clone(), &tx, &mut backoff) => Some(r),
            _ = unwatched(&tx, &name, &subs) => None,
        };
        let Some(outcome) = outcome else { return };
        match outcome {
            // Nothing to retry: the answer (does not exist) stands until nobody asks.
            Ok(Ended::Refused) => return unwatched(&tx, &name, &subs).await,
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
            _ = unwatched(&tx, &name, &subs) => return,
        }
    }
}

/// Resolves once nobody has watched the service for [`LINGER`], having removed it.
async fn unwatched(
    tx: &watch::Sender<Resolution>,
    name: &ServiceName,
    subs: &Mutex<HashMap<ServiceName, watch::Sender<Resolution>>>,
) {
    loop {
        tx.closed().await;
        tokio::time::sleep(LINGER).await;
        let mut subs = subs.lock().unwrap_or_else(|e| e.into_inner());
        // Under the lock no new watcher can appear between the check and the removal.
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
    let mut set: BTreeMap<SocketAddr, Endpoint> = BTreeMap::new();
    // The service's ports, from the last snapshot (only snapshots carry them).
    let mut ports: Arc<[u16]> = Arc::from([]);
    let resolved = |set: &BTreeMap<SocketAddr, Endpoint>, ports: &Arc<[u16]>| {
        let endpoints: Vec<Endpoint> = set.values().cloned().collect();
        Resolution::Endpoints(EndpointSet::new(endpoints, Arc::clone(ports)))
    };
    while let Some(update) = updates.message().await? {
        *backoff = BACKOFF_MIN;
        let next = match update.kind {
            Some(Kind::Snapshot(s)) => {
                set.clear();
                for ep in s.endpoints {
                    let ep = from_wire(ep)?;
                    set.insert(ep.addr, ep);
                }
                ports = s
                    .ports
                    .into_iter()
                    .filter_map(|p| u16::try_from(p).ok())
                    .collect();
                resolved(&set, &ports)
            }
            Some(Kind::Add(s)) => {
                for ep in s.endpoints {
                    let ep = from_wire(ep)?;
                    set.insert(ep.addr, ep);
                }
                resolved(&set, &ports)
            }
            Some(Kind::Remove(s)) => {
                for ep in s.endpoints {
                    set.remove(&from_wire(ep)?.addr);
                }
                resolved(&set, &ports)
            }
            Some(Kind::NoEndpoints(_)) => {
                set.clear();
                resolved(&set, &ports)
            }
            Some(Kind::DoesNotExist(_)) => {
                set.clear();
                Resolution::DoesNotExist
            }
            None => continue,
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
