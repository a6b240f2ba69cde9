//! The per-service watches behind a table-shaped source (file, static). Publishing a new
//! table tells only the services whose endpoints changed.

use std::sync::Mutex;

use tokio::sync::watch;
use weft_core::route::RoutesState;
use weft_core::watches::Watches;
use weft_core::{EndpointSet, ServiceName};

use crate::{Resolution, Table};

#[derive(Default)]
pub struct Registry {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    table: Table,
    watches: Watches<ServiceName, Resolution>,
    routes: Watches<ServiceName, RoutesState>,
}

impl Registry {
    pub fn new(table: Table) -> Self {
        Self {
            state: Mutex::new(State {
                table,
                watches: Watches::default(),
                routes: Watches::default(),
            }),
        }
    }

    pub fn watch(&self, service: &ServiceName) -> Option<watch::Receiver<Resolution>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let State { table, watches, .. } = &mut *state;
        let set = table.services.get(service)?;
        Some(watches.subscribe(service, || Resolution::Endpoints(set.clone())))
    }

    /// Subscribes to `service` whether or not the table has it now: the receiver says
    /// `DoesNotExist` until it appears.
    pub fn follow(&self, service: &ServiceName) -> watch::Receiver<Resolution> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let State { table, watches, .. } = &mut *state;
        watches.subscribe(service, || match table.services.get(service) {
            Some(set) => Resolution::Endpoints(set.clone()),
            None => Resolution::DoesNotExist,
        })
    }

    /// `service`'s routes, `None` while it has none.
    pub fn routes(&self, service: &ServiceName) -> watch::Receiver<RoutesState> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let State { table, routes, .. } = &mut *state;
        routes.subscribe(service, || {
            RoutesState::Known(table.routes.get(service).cloned())
        })
    }

    /// Services the table holds.
    pub fn known(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.table.services.len()
    }

    /// Services some receiver follows.
    pub fn followed(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.watches.len()
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
        let resolve = |name: &ServiceName| match table.services.get(name) {
            Some(set) => Resolution::Endpoints(set.clone()),
            None => Resolution::DoesNotExist,
        };
        // Nobody listens and the service is gone: forget it, so names stay bounded.
        let exists = |name: &ServiceName| table.services.contains_key(name);
        state.watches.publish(resolve, exists);
        state.routes.publish(
            |name| RoutesState::Known(table.routes.get(name).cloned()),
            |_| false,
        );
        state.table = table;
    }
}
