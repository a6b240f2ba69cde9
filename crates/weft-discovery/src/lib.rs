//! Discovery sources: where a proxy learns each service's endpoints.
//!
//! Layout:
//! - [`Discover`]: the trait every source implements — a watch per service name.
//! - [`table`]: the parsed form of a discovery document, shared by file and static sources.
//! - [`file`]: a TOML file, watched through its folder so symlink swaps (ConfigMaps) count.
//! - [`static_source`]: a fixed table.
//! - [`control`]: `weft control`'s Destination API, one gRPC stream per service.
//! - [`control_routes`]: a service's routes from the Destination API, a stream of their own.
//! - [`filewatch`]: watching one file through its folder, for discovery and config reloads.
//! - [`registry`]: the per-service watch senders a table-shaped source publishes into.
#![forbid(unsafe_code)]

pub mod control;
pub mod control_routes;
pub mod file;
pub mod filewatch;
pub mod registry;
pub mod static_source;
pub mod table;

use std::sync::Arc;

use tokio::sync::watch;
use weft_core::route::Routes;
pub use weft_core::Resolution;
use weft_core::{EndpointSet, ServiceName};

pub use control::ControlPlaneDiscovery;
pub use file::FileDiscovery;
pub use static_source::StaticDiscovery;
pub use table::{DiscoveryError, Table};

/// A discovery source: a stream of endpoint-set updates per service name.
pub trait Discover: Send + Sync + 'static {
    /// Subscribes to `service`; `None` when the source knows no such service now.
    /// The receiver always holds the latest resolution.
    fn watch(&self, service: &ServiceName) -> Option<watch::Receiver<Resolution>>;

    /// `service`'s routes as they change: `None` while it has none (its requests go to its
    /// own endpoints). A source that knows no routes never changes it.
    fn routes(&self, service: &ServiceName) -> watch::Receiver<Option<Arc<Routes>>> {
        let _ = service;
        watch::channel(None).1
    }

    /// Whether a new routes receiver is still waiting for the source's first answer (a
    /// remote source), which then comes as a change, even one to `None`.
    fn routes_answer_later(&self) -> bool {
        false
    }

    /// Every known service and its current endpoints, for the admin API.
    fn snapshot(&self) -> Vec<(ServiceName, EndpointSet)>;
}
