//! What several weft components share: service names, endpoints, the names of weft's
//! headers, and the proxy's config and policy model.
//!
//! Layout:
//! - [`name`]: service names and how a request's authority maps onto one.
//! - [`endpoint`]: an endpoint (one instance of a service), the set discovery hands out,
//!   and what a source knows of a service.
//! - [`watches`]: one watch channel per key of a changing source, sent only what changed.
//! - [`config`]: the proxy's configuration model, with file/line errors.
//! - [`duration`]: durations as people write them (`250ms`, `2m`), for config and flags.
//! - [`route`]: a service's routes: matches, weighted backends, per-route policy.
//! - [`ports`]: the ports weft's parts listen on by default.
//! - [`policy`]: resilience policy (balancing, accrual, retries, timeouts), per service.
//! - [`source`]: locating a parse error in the text it came from.
//! - [`label_selector`]: Kubernetes label selectors, as the external metrics API is asked
//!   with them.
//! - [`headers`]: the header names weft reads and writes, and `weft-dst-service` read.
//! - [`context`]: the `weft-ctx-*` headers' values: staging overrides and the hop count.
//! - [`tap`]: what a tap subscriber asks for and is sent.
//! - [`trace`]: trace context headers (W3C, B3): what a request came with, and a child
//!   context written onward in the same format.
#![forbid(unsafe_code)]

pub mod calendar;
pub mod config;
pub mod context;
pub mod duration;
pub mod endpoint;
pub mod headers;
pub mod label_selector;
pub mod name;
pub mod policy;
pub mod ports;
pub mod route;
pub mod source;
pub mod tap;
pub mod trace;
pub mod watches;

pub use endpoint::{Endpoint, EndpointSet, Protocol, Resolution};
pub use name::{NameRules, ServiceName};
