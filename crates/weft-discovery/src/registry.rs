//! The per-service watch senders behind a table-shaped source (file, static).
//! Publishing a new table updates only the services whose endpoints changed.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;
use weft_core::{EndpointSet, ServiceName};

use crate::{Resolution, Table};

#[derive(Default)]
pub struct Registry {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    table: Table,
    senders: HashMap<ServiceName, watch::Sender<Resolution>>,
}

impl Registry {
    pub fn new(table: Table) -> Self {
        Self {
            state: Mutex::new(State {
                table,
                senders: HashMap::new(),
            }),
        }
    }

    pub fn watch(&self, service: &ServiceName) -> Option<watch::Receiver<Resolution>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = state.senders.get(service) {
            if !state.table.services.contains_key(service) {
                return None;
            }
            return Some(tx.subscribe());
        }
        let set = state.table.services.get(service)?.clone();
        let (tx, rx) = watch::channel(Resolution::Endpoints(set));
        state.senders.insert(service.clone(), tx);
        Some(rx)
    }

    pub fn snapshot(&self) -> Vec<(ServiceName, EndpointSet)> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .table
            .services
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect()
    }

    /// Swaps in a new table and tells each watcher whose service changed.
    pub fn publish(&self, table: Table) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.senders.retain(|name, tx| {
            let next = match table.services.get(name) {
                Some(set) => Resolution::Endpoints(set.clone()),
                None => Resolution::DoesNotExist,
            };
            tx.send_if_modified(|cur| {
                if *cur == next {
                    false
                } else {
                    *cur = next;
                    true
                }
            });
            // Nobody listens and the service is gone: forget it, so names stay bounded.
            tx.receiver_count() > 0 || table.services.contains_key(name)
        });
        state.table = table;
    }
}
