//! The per-service answers the Destination API streams: one watch channel per service
//! (and port) that some proxy subscribed to, recomputed from the cluster after each batch
//! of Kubernetes events. Every subscriber shares the one Kubernetes watch per resource.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use weft_core::Endpoint;

use crate::cluster::{Cluster, Key, View};

/// What a subscriber is told of one service.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    DoesNotExist,
    Endpoints(Arc<[Endpoint]>),
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
    senders: HashMap<(Key, u16), watch::Sender<Answer>>,
}

impl Index {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn synced(&self) -> watch::Receiver<bool> {
        self.synced.subscribe()
    }

    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    pub fn mark_synced(&self) {
        self.synced
            .send_if_modified(|s| !std::mem::replace(s, true));
    }

    pub fn subscribe(&self, key: &Key, port: u16) -> watch::Receiver<Answer> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let id = (key.clone(), port);
        if let Some(tx) = state.senders.get(&id) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(answer(&state.cluster.view(), key, port));
        state.senders.insert(id, tx);
        rx
    }

    /// Changes the cluster, then tells every subscribed service whose answer changed.
    pub fn update(&self, change: impl FnOnce(&mut Cluster)) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut state.cluster);
        let State { cluster, senders } = &mut *state;
        let view = cluster.view();
        senders.retain(|(key, port), tx| {
            if tx.receiver_count() == 0 {
                return false;
            }
            let next = answer(&view, key, *port);
            tx.send_if_modified(|cur| {
                let changed = *cur != next;
                if changed {
                    *cur = next;
                }
                changed
            });
            true
        });
    }

    /// Services subscribed to now, for metrics.
    pub fn subscribed(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.senders.len()
    }

    pub fn known_services(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.cluster.services.len()
    }
}

fn answer(view: &View<'_>, key: &Key, port: u16) -> Answer {
    match view.resolve(key, port) {
        None => Answer::DoesNotExist,
        Some(eps) => Answer::Endpoints(eps.into()),
    }
}
