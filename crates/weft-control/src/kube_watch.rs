//! One Kubernetes watch per resource (Services, EndpointSlices, Pods, Nodes), each listed
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
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;

use crate::cluster::{Cluster, Key, NodeRecord, PodRecord, ServiceRecord, SliceRecord};
use crate::index::{Answers, Index};
use crate::metrics::Metrics;

/// Boxed: a Pod event is kilobytes, and batches hold many.
enum Change {
    Service(Box<Event<Service>>),
    Slice(Box<Event<EndpointSlice>>),
    Pod(Box<Event<Pod>>),
    Node(Box<Event<Node>>),
}

const RESOURCES: [&str; 4] = ["services", "endpointslices", "pods", "nodes"];

/// A re-list in progress for one resource: filled by `InitApply`, swapped in at `InitDone`.
struct Relists {
    services: Option<HashMap<Key, ServiceRecord>>,
    slices: Option<HashMap<Key, SliceRecord>>,
    pods: Option<HashMap<Key, PodRecord>>,
    nodes: Option<HashMap<String, NodeRecord>>,
    listed: [bool; 4],
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

/// Runs until the process ends; the watchers retry forever.
pub async fn run(client: kube::Client, index: Arc<Index>, metrics: Arc<Metrics>) {
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
    let nodes = watcher::watcher(Api::<Node>::all(client), config)
        .backoff(WatchBackoff::default())
        .map(|r| r.map(|e| Change::Node(Box::new(e))))
        .map(stream(3));
    let mut all = futures_util::stream::select_all([
        services.boxed(),
        slices.boxed(),
        pods.boxed(),
        nodes.boxed(),
    ]);
    let mut relists = Relists {
        services: None,
        slices: None,
        pods: None,
        nodes: None,
        listed: [false; 4],
    };
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
        if batch.is_empty() {
            continue;
        }
        index.update(|cluster| {
            for change in batch {
                apply(cluster, &mut relists, change);
            }
        });
        if relists.listed.iter().all(|l| *l) && !index.is_synced() {
            tracing::info!("kubernetes state listed; serving destinations");
            index.mark_synced();
        }
    }
}

fn apply(cluster: &mut Cluster, r: &mut Relists, change: Change) {
    // Indices as in RESOURCES.
    let (resource, listed) = match change {
        Change::Service(e) => (
            0,
            step(
                &mut cluster.services,
                &mut r.services,
                *e,
                ServiceRecord::from_k8s,
            ),
        ),
        Change::Slice(e) => (
            1,
            step(
                &mut cluster.slices,
                &mut r.slices,
                *e,
                SliceRecord::from_k8s,
            ),
        ),
        Change::Pod(e) => (
            2,
            step(&mut cluster.pods, &mut r.pods, *e, PodRecord::from_k8s),
        ),
        Change::Node(e) => (
            3,
            step(&mut cluster.nodes, &mut r.nodes, *e, NodeRecord::from_k8s),
        ),
    };
    if listed {
        r.listed[resource] = true;
    }
}

/// Applies one watch event to `map`; returns true when a (re-)list has just completed.
fn step<K, R, O>(
    map: &mut HashMap<K, R>,
    relist: &mut Option<HashMap<K, R>>,
    event: Event<O>,
    record: impl Fn(&O) -> Option<(K, R)>,
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
            if let (Some(buf), Some((k, v))) = (relist.as_mut(), record(&o)) {
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
            if let Some((k, v)) = record(&o) {
                map.insert(k, v);
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
