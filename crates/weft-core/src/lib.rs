//! Names, endpoint sets, the config model and the errors shared by every weft component.
//!
//! Layout:
//! - [`name`]: service names and how a request's authority maps onto one.
//! - [`endpoint`]: an endpoint (one instance of a service) and the set discovery hands out.
//! - [`config`]: the proxy's configuration model, with file/line errors.
//! - [`policy`]: resilience policy (balancing, accrual, retries, timeouts), per service.
//! - [`source`]: locating a parse error in the text it came from.
//! - [`error`]: errors the proxy itself answers with, and their HTTP mapping.
//! - [`headers`]: the header names weft reads and writes.
#![forbid(unsafe_code)]

pub mod config;
pub mod endpoint;
pub mod error;
pub mod headers;
pub mod name;
pub mod policy;
pub mod source;

pub use endpoint::{Endpoint, EndpointSet, Protocol};
pub use error::ProxyError;
pub use name::{NameRules, ServiceName};
