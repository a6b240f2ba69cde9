//! A service's routes from `weft control`: a `GetRoutes` stream of its own beside the
//! endpoints', one per service however many ask, each message the whole set. The routes
//! last known stay in force while the control plane is away, and while what it sends
//! cannot be trusted (a bad message is logged and the next one awaited). A control plane
//! from before routes is asked again now and then (a rolling upgrade brings one that knows).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::Channel;
use weft_api::routes::routes_from_wire;
use weft_api::{DestinationClient, GetDestination};
use weft_core::route::RoutesState;
use weft_core::ServiceName;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long before a control plane that does not know routes is asked again.
const UNKNOWN_AGAIN: Duration = Duration::from_secs(30);

/// The routes streams open now, by service.
#[derive(Default)]
pub struct RoutesStreams {
    open: Arc<Mutex<HashMap<ServiceName, watch::Sender<RoutesState>>>>,
}

impl RoutesStreams {
    /// Follows `service`'s routes while any receiver of them is held.
    pub fn follow(
        &self,
        channel: &Channel,
        node: &str,
        service: &ServiceName,
    ) -> watch::Receiver<RoutesState> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = open.get(service) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(RoutesState::Pending);
        open.insert(service.clone(), tx.clone());
        drop(open);
        let request = GetDestination {
            name: service.to_string(),
            port: 0,
            node: node.to_string(),
        };
        let (channel, name, streams) = (channel.clone(), service.clone(), Arc::clone(&self.open));
        tokio::spawn(async move {
            tokio::select! {
                () = keep_following(channel, request, &name, &tx) => {}
                () = unwatched(&tx, &name, &streams) => {}
            }
        });
        rx
    }

    /// Services whose routes are followed now.
    pub fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Resolves once nobody holds a receiver, having removed the stream from those open.
async fn unwatched(
    tx: &watch::Sender<RoutesState>,
    name: &ServiceName,
    open: &Mutex<HashMap<ServiceName, watch::Sender<RoutesState>>>,
) {
    loop {
        tx.closed().await;
        let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
        // Under the lock no new receiver can be handed out between the check and the removal.
        if tx.receiver_count() == 0 {
            if open.get(name).is_some_and(|t| t.same_channel(tx)) {
                open.remove(name);
            }
            return;
        }
    }
}

async fn keep_following(
    channel: Channel,
    request: GetDestination,
    name: &ServiceName,
    tx: &watch::Sender<RoutesState>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let pause = match stream(channel.clone(), request.clone(), tx, &mut backoff).await {
            Ok(()) => {
                tracing::debug!(service = %name, "routes stream closed; reopening");
                BACKOFF_MIN
            }
            // A control plane from before routes: none, for now.
            Err(s) if s.code() == tonic::Code::Unimplemented => {
                answer(tx, RoutesState::Known(None));
                UNKNOWN_AGAIN
            }
            // A name it will never know: none, for good.
            Err(s) if s.code() == tonic::Code::InvalidArgument => {
                answer(tx, RoutesState::Known(None));
                return std::future::pending().await;
            }
            Err(s) => {
                tracing::warn!(service = %name, error = %s.message(), retry_in = ?backoff, "routes stream failed; keeping the last known routes");
                let pause = backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                pause
            }
        };
        // Full jitter keeps a fleet of proxies from reconnecting in step.
        tokio::time::sleep(pause.mul_f64(0.5 + fastrand::f64() * 0.5)).await;
    }
}

/// Sends `next` when it is news; the first answer always is, even when it says "none".
fn answer(tx: &watch::Sender<RoutesState>, next: RoutesState) {
    tx.send_if_modified(|cur| {
        let changed = *cur != next;
        if changed {
            *cur = next;
        }
        changed
    });
}

async fn stream(
    channel: Channel,
    request: GetDestination,
    tx: &watch::Sender<RoutesState>,
    backoff: &mut Duration,
) -> Result<(), tonic::Status> {
    let mut client = DestinationClient::new(channel);
    let mut messages = client.get_routes(request).await?.into_inner();
    while let Some(msg) = messages.message().await? {
        *backoff = BACKOFF_MIN;
        match routes_from_wire(msg) {
            Ok(r) => answer(tx, RoutesState::Known(r.map(Arc::new))),
            Err(e) => {
                tracing::error!(error = %e, "routes refused; keeping the last known routes")
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_stream_per_service_however_many_ask_and_none_once_nobody_does() {
        // Nothing listens there: the streams fail and retry, as against a control plane away.
        let channel = weft_api::channel::connect_lazy("127.0.0.1:1", None).unwrap();
        let streams = RoutesStreams::default();
        let world = ServiceName::new("world");
        let a = streams.follow(&channel, "n", &world);
        let b = streams.follow(&channel, "n", &world);
        assert_eq!(streams.len(), 1);
        assert_eq!(*a.borrow(), RoutesState::Pending);
        drop((a, b));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !streams.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the stream outlived its receivers"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
