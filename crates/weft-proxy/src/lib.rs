//! weft's data plane: the node proxy's policy on top of the HTTP transport (`weft-http`) —
//! naming services, balancing, resilience, metrics — and its admin listener.
//!
//! Layout — read [`lifecycle`] first; it is the request's way, top to bottom:
//! - [`lifecycle`]: the outbound and inbound handlers, one step per line.
//! - [`admission`]: requests in flight per listener, bounded (503 overloaded past it).
//! - [`identify`]: screening a request, naming its service and looking it up.
//! - [`context`]: one request's state, owned by its handler.
//! - [`attempts`]: the outbound's attempts: pick, send, record, retry.
//! - [`delivery`]: one attempt's exchange over the transport's clients.
//! - [`tunnel`]: `CONNECT` tunnels to mesh services: HTTP inside served, TLS relayed.
//! - [`record`]: the one place an attempt's outcome and the client's view are recorded.
//! - [`services`]: per-service state built once from discovery and cached: endpoints, metrics.
//! - [`balancer`]: picks an endpoint (power of two choices over peak-EWMA, by weight).
//! - [`resilience`]: peak-EWMA, failure accrual, retry verdict and budget, deadlines, policy.
//! - [`replay`]: the request as its attempts send it, small bodies kept for a retry.
//! - [`body`]: the response body that streams through and records its end.
//! - [`egress`]: listed hosts outside the mesh, resolved by DNS, as services.
//! - [`ingress`]: outside callers' requests, routed by host and route rules into the mesh.
//! - [`mesh`]: the mesh's own headers, stripped at the edges and read from peers.
//! - [`carried`]: the `weft-ctx-*` headers a call carries: hop count (loops), overrides.
//! - [`tap`]: live copies of the requests a subscriber's filter matches, never slowing them.
//! - [`trace`]: each request's spans in its trace (W3C, B3), kept and exported over OTLP.
//! - [`error`] and [`respond`]: the errors the proxy answers with, and the one place that
//!   turns them into responses.
//! - [`admin`]: `/live`, `/ready`, `/metrics`, `/config`, `/endpoints`, `/tap`, `/shutdown`.
//! - [`reload`]: reloads resilience policy when the config file changes.
//! - [`shared`]: what every handler shares, built once.
//! - [`identity`]: the mesh identity, as the TLS of the hop between proxies.
//! - [`proxy`]: wires it all together and runs until drained.
//! - [`cli`]: the command line `weft proxy` and `weft-proxy` share, and their one entry point.
#![forbid(unsafe_code)]

pub(crate) mod admin;
pub(crate) mod admission;
pub(crate) mod attempts;
pub(crate) mod balancer;
pub(crate) mod body;
pub(crate) mod carried;
pub mod cli;
pub(crate) mod context;
pub(crate) mod delivery;
pub(crate) mod egress;
pub(crate) mod error;
pub(crate) mod identify;
pub mod identity;
pub(crate) mod ingress;
pub(crate) mod lifecycle;
pub(crate) mod mesh;
pub mod proxy;
pub(crate) mod record;
pub(crate) mod reload;
pub(crate) mod replay;
pub(crate) mod resilience;
pub(crate) mod respond;
pub(crate) mod routing;
pub(crate) mod services;
pub(crate) mod shared;
pub(crate) mod tap;
pub(crate) mod trace;
pub(crate) mod tunnel;

pub use identity::MeshIdentity;
pub use proxy::{Proxy, ProxyHandle, StartError};

/// The maps looked up on every request (services by name, policies by service). Their keys
/// come from discovery and config, not from clients, so a fast seeded hash is enough.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
