//! A service's routes from `weft control`: a `GetRoutes` stream of its own beside the
//! endpoints', each message the whole set. The routes last known stay in force while the
//! control plane is away, and while what it sends cannot be trusted (a bad message is
//! counted in the log and the stream reopened).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::Channel;
use weft_api::routes::routes_from_wire;
use weft_api::{DestinationClient, GetDestination};
use weft_core::route::Routes;
use weft_core::ServiceName;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Follows `service`'s routes until the receiver is dropped.
pub fn follow(
    channel: Channel,
    node: &str,
    service: &ServiceName,
) -> watch::Receiver<Option<Arc<Routes>>> {
    let (tx, rx) = watch::channel(None);
    let request = GetDestination {
        name: service.to_string(),
        port: 0,
        node: node.to_string(),
    };
    let name = service.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = keep_following(channel, request, &name, &tx) => {}
            () = tx.closed() => {}
        }
    });
    rx
}

async fn keep_following(
    channel: Channel,
    request: GetDestination,
    name: &ServiceName,
    tx: &watch::Sender<Option<Arc<Routes>>>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match stream(channel.clone(), request.clone(), tx, &mut backoff).await {
            Ok(()) => tracing::debug!(service = %name, "routes stream closed; reopening"),
            // A control plane from before routes: there are none to follow.
            Err(s) if s.code() == tonic::Code::Unimplemented => return,
            Err(s) if s.code() == tonic::Code::InvalidArgument => return,
            Err(s) => {
                tracing::warn!(service = %name, error = %s.message(), retry_in = ?backoff, "routes stream failed; keeping the last known routes")
            }
        }
        let pause = backoff.mul_f64(0.5 + fastrand::f64() * 0.5);
        backoff = (backoff * 2).min(BACKOFF_MAX);
        tokio::time::sleep(pause).await;
    }
}

async fn stream(
    channel: Channel,
    request: GetDestination,
    tx: &watch::Sender<Option<Arc<Routes>>>,
    backoff: &mut Duration,
) -> Result<(), tonic::Status> {
    let mut client = DestinationClient::new(channel);
    let mut messages = client.get_routes(request).await?.into_inner();
    let mut first = true;
    while let Some(msg) = messages.message().await? {
        *backoff = BACKOFF_MIN;
        let next = match routes_from_wire(msg) {
            Ok(r) => r.map(Arc::new),
            Err(e) => {
                tracing::error!(error = %e, "routes refused; keeping the last known routes");
                continue;
            }
        };
        // The first answer is news even when it says "none": a lookup waits for it.
        let announce = std::mem::take(&mut first);
        tx.send_if_modified(|cur| {
            let changed = *cur != next;
            if changed {
                *cur = next;
            }
            changed || announce
        });
    }
    Ok(())
}
