//! The Destination API server: one task per stream, following the service's answer in the
//! index and sending a snapshot first, then only what changed.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use weft_api::destination::Routes as WireRoutes;
use weft_api::destination::{DoesNotExist, EndpointSet, NoEndpoints};
use weft_api::routes::routes_to_wire;
use weft_api::{to_wire, Destination, GetDestination, Kind, Update};
use weft_core::{Endpoint, Resolution};

use crate::cluster::{parse_name, Key};
use crate::identity::incoming::Peer;
use crate::index::Answers;
use crate::metrics::Metrics;

pub struct DestinationService {
    pub index: Arc<dyn Answers>,
    pub metrics: Arc<Metrics>,
    pub default_namespace: String,
    pub cluster_domain: String,
    /// With identity on: only a caller that showed a proxy's certificate is answered (the
    /// TLS handshake has checked it is one).
    pub require_proxy: bool,
    /// A permit per open stream: none left, and a new stream is refused.
    pub open: Arc<Semaphore>,
}

/// A stream asked for: its service, port and caller, and its place among the open ones.
struct Opened {
    key: Key,
    port: u16,
    node: String,
    permit: OwnedSemaphorePermit,
}

impl DestinationService {
    /// Checks the caller and the name, and takes a place for the stream; every refusal is
    /// the status the caller is answered with.
    fn open(&self, request: Request<GetDestination>) -> Result<Opened, Status> {
        let caller = request
            .extensions()
            .get::<Peer>()
            .and_then(|p| p.identity.clone());
        if self.require_proxy && caller.is_none() {
            return Err(Status::unauthenticated(
                "the Destination API answers mesh proxies only: connect with the proxy's certificate",
            ));
        }
        let req = request.into_inner();
        let key = parse_name(&req.name, &self.default_namespace, &self.cluster_domain).ok_or_else(
            || Status::invalid_argument(format!("{:?} is not a service name", req.name)),
        )?;
        let port = u16::try_from(req.port)
            .map_err(|_| Status::invalid_argument(format!("port {} out of range", req.port)))?;
        let Ok(permit) = Arc::clone(&self.open).try_acquire_owned() else {
            self.metrics.streams_refused.inc();
            tracing::warn!(service = %key, node = %req.node, "destination stream refused: the cap on open streams is reached");
            return Err(Status::resource_exhausted(
                "the control plane has as many Destination streams open as it takes (--max-streams)",
            ));
        };
        Ok(Opened {
            key,
            port,
            node: req.node,
            permit,
        })
    }
}

#[tonic::async_trait]
impl Destination for DestinationService {
    type GetStream = ReceiverStream<Result<Update, Status>>;
    type GetRoutesStream = ReceiverStream<Result<WireRoutes, Status>>;

    async fn get(
        &self,
        request: Request<GetDestination>,
    ) -> Result<Response<Self::GetStream>, Status> {
        let Opened {
            key,
            port,
            node,
            permit,
        } = self.open(request)?;
        tracing::debug!(service = %key, port, %node, "destination stream opened");
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(follow(
            Arc::clone(&self.index),
            Arc::clone(&self.metrics),
            key,
            port,
            tx,
            permit,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_routes(
        &self,
        request: Request<GetDestination>,
    ) -> Result<Response<Self::GetRoutesStream>, Status> {
        let Opened {
            key, node, permit, ..
        } = self.open(request)?;
        tracing::debug!(service = %key, %node, "routes stream opened");
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(follow_routes(
            Arc::clone(&self.index),
            Arc::clone(&self.metrics),
            key,
            tx,
            permit,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Sends the service's routes whole, first as they are, then at every change.
async fn follow_routes(
    index: Arc<dyn Answers>,
    metrics: Arc<Metrics>,
    key: Key,
    tx: mpsc::Sender<Result<WireRoutes, Status>>,
    // Held for the stream's life.
    _permit: OwnedSemaphorePermit,
) {
    if !synced_while_open(&*index, &tx).await {
        return;
    }
    let mut routes = index.routes(&key);
    let _open = OpenStream::new(&metrics.streams);
    loop {
        let msg = routes_to_wire(routes.borrow_and_update().routes().as_deref());
        if tx.send(Ok(msg)).await.is_err() {
            return;
        }
        metrics
            .updates
            .get_or_create(&vec![("kind", "routes")])
            .inc();
        tokio::select! {
            r = routes.changed() => if r.is_err() { return },
            _ = tx.closed() => return,
        }
    }
}

async fn follow(
    index: Arc<dyn Answers>,
    metrics: Arc<Metrics>,
    key: Key,
    port: u16,
    tx: mpsc::Sender<Result<Update, Status>>,
    // Held for the stream's life.
    _permit: OwnedSemaphorePermit,
) {
    if !synced_while_open(&*index, &tx).await {
        return;
    }
    let mut answers = index.subscribe(&key, port);
    let _open = OpenStream::new(&metrics.streams);
    let mut last: Option<Resolution> = None;
    loop {
        let next = answers.borrow_and_update().clone();
        for (kind, update) in diff(last.as_ref(), &next) {
            if tx.send(Ok(update)).await.is_err() {
                return;
            }
            metrics.updates.get_or_create(&vec![("kind", kind)]).inc();
        }
        last = Some(next);
        tokio::select! {
            r = answers.changed() => if r.is_err() { return },
            _ = tx.closed() => return,
        }
    }
}

/// Waits until the source has its whole state (nothing is answered before), unless the
/// stream's caller leaves first: then false.
async fn synced_while_open<T>(index: &dyn Answers, tx: &mpsc::Sender<T>) -> bool {
    let mut synced = index.synced();
    tokio::select! {
        r = synced.wait_for(|s| *s) => r.is_ok(),
        _ = tx.closed() => false,
    }
}

/// Counts a stream in the open-streams gauge for as long as it lives.
struct OpenStream(prometheus_client::metrics::gauge::Gauge);

impl OpenStream {
    fn new(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The updates that take a subscriber from `prev` (nothing yet: `None`) to `next`.
pub fn diff(prev: Option<&Resolution>, next: &Resolution) -> Vec<(&'static str, Update)> {
    let msg = |kind| Update { kind: Some(kind) };
    let set = |eps: &mut dyn Iterator<Item = &Endpoint>| EndpointSet {
        endpoints: eps.map(to_wire).collect(),
        ports: Vec::new(),
        failover: Vec::new(),
    };
    let snapshot = |n: &weft_core::EndpointSet| {
        let mut whole = set(&mut n.iter());
        whole.ports = n.ports().iter().map(|&p| u32::from(p)).collect();
        whole.failover = n.failover().to_vec();
        vec![("snapshot", msg(Kind::Snapshot(whole)))]
    };
    // Only a snapshot carries the ports and failover zones: a stream that has none yet, or
    // whose service's changed, is sent one.
    let (prev_ports, prev_failover) = match prev {
        Some(Resolution::Endpoints(p)) => (p.ports(), p.failover()),
        _ => (&[][..], &[][..]),
    };
    match (prev, next) {
        // The index answers only once it has synced; nothing is said until then.
        (_, Resolution::Pending) => vec![],
        (Some(Resolution::DoesNotExist), Resolution::DoesNotExist) => vec![],
        (_, Resolution::Endpoints(n))
            if n.ports() != prev_ports || n.failover() != prev_failover =>
        {
            snapshot(n)
        }
        (_, Resolution::DoesNotExist) => {
            vec![("does_not_exist", msg(Kind::DoesNotExist(DoesNotExist {})))]
        }
        (Some(Resolution::Endpoints(p)), Resolution::Endpoints(n))
            if n.is_empty() && p.is_empty() =>
        {
            vec![]
        }
        (_, Resolution::Endpoints(n)) if n.is_empty() => {
            vec![("no_endpoints", msg(Kind::NoEndpoints(NoEndpoints {})))]
        }
        (Some(Resolution::Endpoints(p)), Resolution::Endpoints(n)) if !p.is_empty() => {
            let mut out = Vec::new();
            // Added first, so the set never dips below its final size in between.
            let added: Vec<&Endpoint> = n.iter().filter(|e| !p.contains(e)).collect();
            if !added.is_empty() {
                out.push(("add", msg(Kind::Add(set(&mut added.into_iter())))));
            }
            let kept: HashSet<_> = n.iter().map(|e| e.addr).collect();
            let removed: Vec<&Endpoint> = p.iter().filter(|e| !kept.contains(&e.addr)).collect();
            if !removed.is_empty() {
                out.push(("remove", msg(Kind::Remove(set(&mut removed.into_iter())))));
            }
            out
        }
        (_, Resolution::Endpoints(n)) => snapshot(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(port: u16) -> Endpoint {
        Endpoint {
            addr: std::net::SocketAddr::from(([10, 0, 0, 1], port)),
            node_proxy: None,
            protocol: Default::default(),
            weight: 1,
            labels: Default::default(),
        }
    }

    fn kinds(v: Vec<(&'static str, Update)>) -> Vec<&'static str> {
        v.into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn a_stream_starts_whole_then_sends_only_changes() {
        let a = Resolution::Endpoints(vec![ep(1), ep(2)].into());
        let b = Resolution::Endpoints(vec![ep(2), ep(3)].into());
        assert_eq!(kinds(diff(None, &a)), ["snapshot"]);
        assert_eq!(kinds(diff(Some(&a), &b)), ["add", "remove"]);
        assert_eq!(kinds(diff(Some(&b), &b)), Vec::<&str>::new());
        let empty = Resolution::Endpoints(vec![].into());
        assert_eq!(kinds(diff(Some(&b), &empty)), ["no_endpoints"]);
        assert_eq!(kinds(diff(Some(&empty), &a)), ["snapshot"]);
        assert_eq!(
            kinds(diff(Some(&a), &Resolution::DoesNotExist)),
            ["does_not_exist"]
        );
        assert_eq!(
            kinds(diff(Some(&Resolution::DoesNotExist), &a)),
            ["snapshot"]
        );
    }

    #[test]
    fn the_services_ports_go_in_snapshots_and_a_change_of_them_sends_one() {
        let with = |ports: Vec<u16>| {
            Resolution::Endpoints(weft_core::EndpointSet::new(vec![ep(1)], ports))
        };
        let first = diff(None, &with(vec![80]));
        assert_eq!(kinds(first.clone()), ["snapshot"]);
        let Some(Kind::Snapshot(set)) = &first[0].1.kind else {
            panic!("not a snapshot");
        };
        assert_eq!(set.ports, [80]);
        assert_eq!(
            kinds(diff(Some(&with(vec![80])), &with(vec![80]))),
            Vec::<&str>::new()
        );
        assert_eq!(
            kinds(diff(Some(&with(vec![80])), &with(vec![80, 443]))),
            ["snapshot"]
        );
        // An empty service with ports still says them, and so does every later snapshot.
        let empty = Resolution::Endpoints(weft_core::EndpointSet::new(vec![], vec![80]));
        assert_eq!(kinds(diff(None, &empty)), ["snapshot"]);
        let refilled = diff(Some(&empty), &with(vec![80]));
        let Some(Kind::Snapshot(set)) = &refilled[0].1.kind else {
            panic!("not a snapshot: {refilled:?}");
        };
        assert_eq!(set.ports, [80]);
    }

    #[test]
    fn failover_zones_go_in_snapshots_and_a_change_of_them_sends_one() {
        let with = |zones: &[&str]| {
            let set = weft_core::EndpointSet::new(vec![ep(1)], vec![]);
            let zones: Vec<String> = zones.iter().map(|z| z.to_string()).collect();
            Resolution::Endpoints(set.with_failover(zones))
        };
        let first = diff(None, &with(&["a", "b"]));
        let Some(Kind::Snapshot(set)) = &first[0].1.kind else {
            panic!("not a snapshot");
        };
        assert_eq!(set.failover, ["a", "b"]);
        assert_eq!(
            kinds(diff(Some(&with(&["a", "b"])), &with(&["b", "a"]))),
            ["snapshot"]
        );
        assert!(diff(Some(&with(&["a"])), &with(&["a"])).is_empty());
    }
}
