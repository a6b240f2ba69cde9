//! The per-service answers the Destination API streams: one watch per service (and port)
//! that some proxy subscribed to, resolved again from the cluster after each batch of
//! Kubernetes events. Every subscriber shares the one Kubernetes watch per resource.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use weft_core::route::RoutesState;
use weft_core::watches::Watches;
use weft_core::{EndpointSet, Resolution};

use crate::cluster::{Cluster, Key, View};

/// Where the Destination API's answers come from: the Kubernetes [`Index`], or a discovery
/// file ([`crate::file_source`]) when the control plane runs without Kubernetes.
pub trait Answers: Send + Sync + 'static {
    /// Turns true once the source has its whole state; nothing is answered before.
    fn synced(&self) -> watch::Receiver<bool>;
    fn is_synced(&self) -> bool;
    /// The answer for a service and port, kept current.
    fn subscribe(&self, key: &Key, port: u16) -> watch::Receiver<Resolution>;
    /// A service's routes, kept current: known to be none while it has none.
    fn routes(&self, key: &Key) -> watch::Receiver<RoutesState>;
    /// Services subscribed to now, for metrics.
    fn subscribed(&self) -> usize;
    fn known_services(&self) -> usize;
}

#[derive(Default)]
pub struct Index {
    state: Mutex<State>,
    /// Turns true once every resource has been listed; before that no answer is given, so a
    /// restarted control plane never tells a proxy that a service is gone.
    synced: watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    cluster: Cluster,
    watches: Watches<(Key, u16), Resolution>,
    routes: Watches<Key, RoutesState>,
}

impl Index {
    /// An index whose nodes' proxies are the pods of weft's DaemonSet in `proxy_namespace`.
    pub fn new(proxy_namespace: &str) -> Arc<Self> {
        let index = Self::default();
        index
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cluster
            .proxy_namespace = proxy_namespace.to_string();
        Arc::new(index)
    }

    pub fn mark_synced(&self) {
        self.synced
            .send_if_modified(|s| !std::mem::replace(s, true));
    }

    /// Changes the cluster, then tells every subscribed service whose answer changed.
    pub fn update(&self, change: impl FnOnce(&mut Cluster)) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut state.cluster);
        let State {
            cluster,
            watches,
            routes,
        } = &mut *state;
        let view = cluster.view();
        watches.publish(|(key, port)| resolve(&view, key, *port), |_| false);
        routes.publish(
            |key| RoutesState::Known(cluster.routes.get(key).cloned()),
            |_| false,
        );
    }
}

impl Index {
    /// Every route's status as weft would report it now.
    pub fn route_statuses(
        &self,
        now: &str,
    ) -> Vec<((crate::gateway::RouteKind, Key), serde_json::Value)> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.cluster.route_statuses(now)
    }
}

impl Answers for Index {
    fn synced(&self) -> watch::Receiver<bool> {
        self.synced.subscribe()
    }

    fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    fn subscribe(&self, key: &Key, port: u16) -> watch::Receiver<Resolution> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let State {
            cluster, watches, ..
        } = &mut *state;
        watches.subscribe(&(key.clone(), port), || resolve(&cluster.view(), key, port))
    }

    fn routes(&self, key: &Key) -> watch::Receiver<RoutesState> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let State {
            cluster, routes, ..
        } = &mut *state;
        routes.subscribe(key, || RoutesState::Known(cluster.routes.get(key).cloned()))
    }

    /// Services subscribed to now, for metrics.
    fn subscribed(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.watches.len()
    }

    fn known_services(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.cluster.services.len()
    }
}

fn resolve(view: &View<'_>, key: &Key, port: u16) -> Resolution {
    match view.resolve(key, port) {
        None => Resolution::DoesNotExist,
        Some(eps) => {
            let ports = view.ports(key).unwrap_or_default();
            let failover = view.failover(key);
            Resolution::Endpoints(EndpointSet::new(eps, ports).with_failover(failover))
        }
    }
}
