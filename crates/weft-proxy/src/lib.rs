//! weft's data plane: the listeners, the request's way through the proxy, the balancer and
//! the upstream connection pools.
//!
//! Layout — read [`lifecycle`] first; it is the request's way, top to bottom:
//! - [`lifecycle`]: outbound and inbound handlers, one step per line of the request's way.
//! - [`server`]: accepts connections, serves HTTP/1.1 and h2c on one port, drains on shutdown.
//! - [`h2c`]: the listener's HTTP/2 side: streams accepted and answered on the h2 crate.
//! - [`h1`]: weft's own HTTP/1.x codec: client connections (heads, bodies, framing, idle
//!   connections that hold no buffers) and the pieces the upstream HTTP/1.1 client reuses.
//! - [`services`]: per-service state built once from discovery and cached: endpoints, metrics.
//! - [`balancer`]: picks an endpoint (power of two choices over peak-EWMA, by weight).
//! - [`resilience`]: peak-EWMA, failure accrual, retry budget, deadlines, compiled policy.
//! - [`retry`]: bodies kept for replay, attempts rebuilt, backoff.
//! - [`delivery`]: one attempt's exchange, an enum of the client futures.
//! - [`client`]: upstream connections: a lean HTTP/1.1 client and pool (the forwarding task
//!   does the I/O itself) and one shared HTTP/2 connection
//!   per peer; the TLS connector slot goes in [`client::connect`].
//! - [`headers`]: hop-by-hop stripping, authority and request-shape checks.
//! - [`body`]: the response body that streams through and records completion.
//! - [`respond`]: the one place that turns errors into responses.
//! - [`admin`]: `/live`, `/ready`, `/metrics`, `/config`, `/endpoints`, `/shutdown`.
//! - [`reload`]: reloads resilience policy when the config file changes.
//! - [`proxy`]: wires it all together and runs until drained.
#![forbid(unsafe_code)]

pub mod admin;
pub mod balancer;
pub mod body;
pub mod client;
pub mod delivery;
pub mod h1;
pub mod h2c;
pub mod headers;
pub mod lifecycle;
pub mod proxy;
pub mod reload;
pub mod resilience;
pub mod respond;
pub mod retry;
pub mod server;
pub mod services;

pub use proxy::{Proxy, ProxyHandle};

/// The maps looked up on every request (services by name, pooled connections by address,
/// policies by service). Their keys come from discovery and config, not from clients, so a
/// fast seeded hash is enough; SipHash cost about 200 instructions per lookup.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
