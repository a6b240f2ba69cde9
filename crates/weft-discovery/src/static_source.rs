//! A fixed table, for proxies started without a discovery file and for tests.

use tokio::sync::watch;
use weft_core::{EndpointSet, ServiceName};

use crate::registry::Registry;
use crate::{Discover, Resolution, Table};

pub struct StaticDiscovery {
    registry: Registry,
}

impl StaticDiscovery {
    pub fn new(table: Table) -> Self {
        Self {
            registry: Registry::new(table),
        }
    }

    /// Replaces the table; watchers of changed services are told.
    pub fn set(&self, table: Table) {
        self.registry.publish(table);
    }
}

impl Discover for StaticDiscovery {
    fn watch(&self, service: &ServiceName) -> Option<watch::Receiver<Resolution>> {
        self.registry.watch(service)
    }

    fn routes(&self, service: &ServiceName) -> watch::Receiver<weft_core::route::RoutesState> {
        self.registry.routes(service)
    }

    fn snapshot(&self) -> Vec<(ServiceName, EndpointSet)> {
        self.registry.snapshot()
    }
}
