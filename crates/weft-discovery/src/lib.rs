//! Discovery sources: where a proxy learns each service's endpoints.
//!
//! Layout:
//! - [`Discover`]: the trait every source implements — a watch per service name.
//! - [`table`]: the parsed form of a discovery document, shared by file and static sources.
//! - [`file`]: a TOML file, watched through its folder so symlink swaps (ConfigMaps) count.
//! - [`static_source`]: a fixed table.
//! - [`control`]: `weft control`'s Destination API, one gRPC stream per service.
//! - [`updates`]: one service's Destination API updates folded into its resolution.
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
pub mod updates;

use tokio::sync::watch;
use weft_core::route::RoutesState;
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

    /// `service`'s routes as they change: known to be none while it has none (its requests
    /// go to its own endpoints), pending until a remote source's first answer. A source
    /// that knows no routes says none.
    fn routes(&self, service: &ServiceName) -> watch::Receiver<RoutesState> {
        let _ = service;
        watch::channel(RoutesState::Known(None)).1
    }

    /// Every known service and its current endpoints, for the admin API.
    fn snapshot(&self) -> Vec<(ServiceName, EndpointSet)>;
}
