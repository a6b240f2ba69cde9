//! One Kubernetes watch per resource (Services, EndpointSlices, Pods, Nodes, and Gateway
//! API's HTTPRoutes and GRPCRoutes when their CRDs are installed), each listed
//! then watched by kube-runtime's watcher: resumed from its last resourceVersion after a
//! dropped connection, re-listed after `410 Gone`, retried with backoff while the API
//! server is away. A re-list is swapped in whole when it completes, so subscribers never
//! see the half-listed state.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use serde_json::Value;

use crate::cluster::{Cluster, Key, NodeRecord, PodRecord, ServiceRecord, SliceRecord};
use crate::gateway::{self, RouteKind, RouteObject};
use crate::index::{Answers, Index};
use crate::metrics::Metrics;

/// Boxed: a Pod event is kilobytes, and batches hold many.
enum Change {
    Service(Box<Event<Service>>),
    Slice(Box<Event<EndpointSlice>>),
    Pod(Box<Event<Pod>>),
    Node(Box<Event<Node>>),
    Route(RouteKind, Box<Event<DynamicObject>>),
    /// The resource's CRD is not installed (its list answers 404): none of it exists.
    Absent(usize),
}

const RESOURCES: [&str; 6] = [
    "services",
    "endpointslices",
    "pods",
    "nodes",
    "httproutes",
    "grpcroutes",
];
/// Where the optional resources (Gateway API's routes) start in [`RESOURCES`].
const OPTIONAL: usize = 4;

/// A re-list in progress for one resource: filled by `InitApply`, swapped in at `InitDone`.
struct Relists {
    services: Option<HashMap<Key, ServiceRecord>>,
    slices: Option<HashMap<Key, SliceRecord>>,
    pods: Option<HashMap<Key, PodRecord>>,
    nodes: Option<HashMap<String, NodeRecord>>,
    http_routes: Option<HashMap<Key, RouteObject>>,
    grpc_routes: Option<HashMap<Key, RouteObject>>,
    listed: [bool; 6],
}

/// A resumed watch or a re-list after `410 Gone` is routine, so the first retry comes
/// quickly (100 ms); an API server that stays away is asked ever less often, up to every 10 s.
struct WatchBackoff {
    next: Duration,
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

impl Default for WatchBackoff {
    fn default() -> Self {
        Self { next: BACKOFF_MIN }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = (d * 2).min(BACKOFF_MAX);
        // Jitter keeps the four watchers (and many control planes) from retrying in step.
        Some(d.mul_f64(0.5 + fastrand::f64() * 0.5))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

/// The API resource of a kind of route, for a dynamic watch (Gateway API's types are not in
/// k8s-openapi).
pub fn route_resource(kind: RouteKind) -> ApiResource {
    ApiResource {
        group: gateway::GROUP.into(),
        version: gateway::VERSION.into(),
        api_version: format!("{}/{}", gateway::GROUP, gateway::VERSION),
        kind: kind.kind().into(),
        plural: kind.plural().into(),
    }
}

/// Runs until the process ends; the watchers retry forever. `default_namespace` is where
/// names without a namespace are looked up, as the Destination API does.
pub async fn run(
    client: kube::Client,
    index: Arc<Index>,
    metrics: Arc<Metrics>,
    default_namespace: String,
) {
    let config = watcher::Config::default();
    let stream = |i: usize| {
        let metrics = Arc::clone(&metrics);
        move |r: Result<Change, watcher::Error>| {
            let resource = RESOURCES[i];
            match r {
                Ok(c) => {
                    metrics
                        .kube_events
                        .get_or_create(&vec![("resource", resource)])
                        .inc();
                    Some(c)
                }
                // The CRD is not installed: nothing of it exists, which is no error.
                Err(watcher::Error::InitialListFailed(kube::Error::Api(s)))
                    if i >= OPTIONAL && s.code == 404 =>
                {
                    Some(Change::Absent(i))
                }
                // Optional resources never hold up readiness: forbidden (an old
                // ClusterRole) or failing, they are counted and retried, and the services
                // are served meanwhile.
                Err(e @ watcher::Error::InitialListFailed(_)) if i >= OPTIONAL => {
                    metrics
                        .kube_errors
                        .get_or_create(&vec![("resource", resource)])
                        .inc();
                    tracing::warn!(resource, error = %e, "cannot list an optional resource; serving without it and retrying");
                    Some(Change::Absent(i))
                }
                Err(e) => {
                    metrics
                        .kube_errors
                        .get_or_create(&vec![("resource", resource)])
                        .inc();
                    tracing::warn!(resource, error = %e, "kubernetes watch failed; retrying");
                    None
                }
            }
        }
    };
    let services = watcher::watcher(Api::<Service>::all(client.clone()), config.clone())
        .backoff(WatchBackoff::default())
        .map(|r| r.map(|e| Change::Service(Box::new(e))))
        .map(stream(0));
    let slices = watcher::watcher(Api::<EndpointSlice>::all(client.clone()), config.clone())
        .backoff(WatchBackoff::default())
        .map(|r| r.map(|e| Change::Slice(Box::new(e))))
        .map(stream(1));
    let pods = watcher::watcher(Api::<Pod>::all(client.clone()), config.clone())
        .backoff(WatchBackoff::default())
        .map(|r| r.map(|e| Change::Pod(Box::new(e))))
        .map(stream(2));
    let nodes = watcher::watcher(Api::<Node>::all(client.clone()), config.clone())
        .backoff(WatchBackoff::default())
        .map(|r| r.map(|e| Change::Node(Box::new(e))))
        .map(stream(3));
    let routes = |kind: RouteKind, i: usize| {
        let api = Api::<DynamicObject>::all_with(client.clone(), &route_resource(kind));
        watcher::watcher(api, config.clone())
            .backoff(WatchBackoff::default())
            .map(move |r| r.map(|e| Change::Route(kind, Box::new(e))))
            .map(stream(i))
    };
    let mut all = futures_util::stream::select_all([
        services.boxed(),
        slices.boxed(),
        pods.boxed(),
        nodes.boxed(),
        routes(RouteKind::Http, 4).boxed(),
        routes(RouteKind::Grpc, 5).boxed(),
    ]);
    let mut relists = Relists {
        services: None,
        slices: None,
        pods: None,
        nodes: None,
        http_routes: None,
        grpc_routes: None,
        listed: [false; 6],
    };
    // What each route's status says now (times left out), as written; a write that fails
    // for good is forgotten here, so the next change of routes tries again.
    let reported: Reported = Arc::default();
    let statuses = status_writer(client, Arc::clone(&reported));
    while let Some(first) = all.next().await {
        // Apply whatever else is already waiting in the same pass: one recompute per batch.
        let mut batch: Vec<Change> = first.into_iter().collect();
        while batch.len() < 512 {
            match all.next().now_or_never() {
                Some(Some(Some(c))) => batch.push(c),
                Some(Some(None)) => {}
                _ => break,
            }
        }
        // A resource found absent again (its list retried) changes nothing.
        batch.retain(|c| !matches!(c, Change::Absent(i) if relists.listed[*i]));
        if batch.is_empty() {
            continue;
        }
        // Routes (and their status, which names missing backends) change with routes and
        // Services only.
        let touched = batch.iter().any(|c| {
            matches!(
                c,
                Change::Route(..) | Change::Service(_) | Change::Absent(_)
            )
        });
        index.update(|cluster| {
            for change in batch {
                apply(cluster, &mut relists, change, &default_namespace);
            }
            if touched {
                cluster.refresh_routes();
            }
        });
        if touched {
            // Each route's verdict goes back as its status, when it changed.
            let now = crate::calendar::rfc3339(std::time::SystemTime::now());
            let current = index.route_statuses(&now);
            let mut reported = reported.lock().unwrap_or_else(|e| e.into_inner());
            reported.retain(|id, _| current.iter().any(|(i, _)| i == id));
            for (id, status) in current {
                let bare = gateway::without_times(&status);
                if reported.get(&id) != Some(&bare)
                    && statuses.try_send((id.clone(), status)).is_ok()
                {
                    reported.insert(id, bare);
                }
            }
        }
        if relists.listed.iter().all(|l| *l) && !index.is_synced() {
            tracing::info!("kubernetes state listed; serving destinations");
            index.mark_synced();
        }
    }
}

fn apply(cluster: &mut Cluster, r: &mut Relists, change: Change, default_namespace: &str) {
    let route = |kind| {
        move |o: &DynamicObject| {
            let key = Key::new(
                o.metadata.namespace.as_deref().unwrap_or("default"),
                o.metadata.name.as_deref()?,
            );
            let meta = gateway::MetaView {
                generation: o.metadata.generation.unwrap_or(0),
                created: o
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
            };
            let object = gateway::read(kind, &key, &meta, &o.data, default_namespace);
            Some((key, object))
        }
    };
    // Indices as in RESOURCES.
    let (resource, listed) = match change {
        Change::Service(e) => (
            0,
            step(
                &mut cluster.services,
                &mut r.services,
                *e,
                always(ServiceRecord::from_k8s),
            ),
        ),
        Change::Slice(e) => (
            1,
            step(
                &mut cluster.slices,
                &mut r.slices,
                *e,
                always(SliceRecord::from_k8s),
            ),
        ),
        Change::Pod(e) => (
            2,
            step(
                &mut cluster.pods,
                &mut r.pods,
                *e,
                always(PodRecord::from_k8s),
            ),
        ),
        Change::Node(e) => (
            3,
            step(
                &mut cluster.nodes,
                &mut r.nodes,
                *e,
                always(NodeRecord::from_k8s),
            ),
        ),
        Change::Route(RouteKind::Http, e) => (
            4,
            step(
                &mut cluster.http_routes,
                &mut r.http_routes,
                *e,
                route(RouteKind::Http),
            ),
        ),
        Change::Route(RouteKind::Grpc, e) => (
            5,
            step(
                &mut cluster.grpc_routes,
                &mut r.grpc_routes,
                *e,
                route(RouteKind::Grpc),
            ),
        ),
        Change::Absent(i) => (i, true),
    };
    if listed {
        r.listed[resource] = true;
    }
}

/// Applies one watch event to `map`; returns true when a (re-)list has just completed.
/// `record` gives an object's key and its record, or no record when the object is none of
/// ours (a route attached to no Service): then it leaves the map, as when deleted.
fn step<K, R, O>(
    map: &mut HashMap<K, R>,
    relist: &mut Option<HashMap<K, R>>,
    event: Event<O>,
    record: impl Fn(&O) -> Option<(K, Option<R>)>,
) -> bool
where
    K: Eq + Hash,
{
    match event {
        Event::Init => {
            *relist = Some(HashMap::new());
            false
        }
        Event::InitApply(o) => {
            if let (Some(buf), Some((k, Some(v)))) = (relist.as_mut(), record(&o)) {
                buf.insert(k, v);
            }
            false
        }
        Event::InitDone => {
            if let Some(buf) = relist.take() {
                *map = buf;
            }
            true
        }
        Event::Apply(o) => {
            match record(&o) {
                Some((k, Some(v))) => {
                    map.insert(k, v);
                }
                Some((k, None)) => {
                    map.remove(&k);
                }
                None => {}
            }
            false
        }
        Event::Delete(o) => {
            if let Some((k, _)) = record(&o) {
                map.remove(&k);
            }
            false
        }
    }
}

/// A record function for resources whose every object is a record.
fn always<K, R, O>(f: impl Fn(&O) -> Option<(K, R)>) -> impl Fn(&O) -> Option<(K, Option<R>)> {
    move |o| f(o).map(|(k, v)| (k, Some(v)))
}

type Reported = Arc<std::sync::Mutex<HashMap<(RouteKind, Key), Value>>>;

/// Writes routes' statuses, one at a time, in the order they were decided. Only weft's own
/// entries of `status.parents` are replaced (a Gateway controller's stay), against the
/// version read, so a write in between makes this one fail and go again. A write that fails
/// three times is forgotten from `reported`, and the route's next change writes it anew.
fn status_writer(
    client: kube::Client,
    reported: Reported,
) -> tokio::sync::mpsc::Sender<((RouteKind, Key), Value)> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<((RouteKind, Key), Value)>(1024);
    tokio::spawn(async move {
        while let Some(((kind, key), status)) = rx.recv().await {
            let api = Api::<DynamicObject>::namespaced_with(
                client.clone(),
                &key.namespace,
                &route_resource(kind),
            );
            let mut written = false;
            for attempt in 0..3u32 {
                match write_status(&api, &key.name, &status).await {
                    Ok(()) => {
                        written = true;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(route = %key, kind = kind.kind(), error = %e, attempt, "writing a route's status failed");
                        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    }
                }
            }
            if !written {
                reported
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&(kind, key));
            }
        }
    });
    tx
}

async fn write_status(api: &Api<DynamicObject>, name: &str, ours: &Value) -> kube::Result<()> {
    let route = api.get_status(name).await?;
    let mut parents: Vec<Value> = route.data["status"]["parents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["controllerName"] != gateway::CONTROLLER_NAME)
        .cloned()
        .collect();
    parents.extend(
        ours["status"]["parents"]
            .as_array()
            .into_iter()
            .flatten()
            .cloned(),
    );
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": route.metadata.resource_version },
        "status": { "parents": parents },
    });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects are numbers; an even one is a record, an odd one none of ours.
    fn record(o: &u32) -> Option<(u32, Option<u32>)> {
        Some((o / 10, o.is_multiple_of(2).then_some(*o)))
    }

    #[test]
    fn an_object_that_stops_being_ours_leaves_as_if_deleted() {
        let (mut map, mut relist) = (HashMap::new(), None);
        step(&mut map, &mut relist, Event::Apply(10), record);
        assert_eq!(map.get(&1), Some(&10));
        // The same object (key 1), edited into one that is not ours.
        step(&mut map, &mut relist, Event::Apply(11), record);
        assert!(map.is_empty());
        step(&mut map, &mut relist, Event::Apply(12), record);
        step(&mut map, &mut relist, Event::Delete(13), record);
        assert!(map.is_empty(), "deleted by key, whatever it had become");
    }
}
