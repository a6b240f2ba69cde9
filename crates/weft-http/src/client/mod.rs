//! Upstream connections. HTTP/1.1 goes through a lean per-endpoint pool; HTTP/2 shares one
//! multiplexed connection per address (the proxy-to-proxy hop and h2 instances alike); an
//! upgrade (WebSocket) gets a connection of its own.
//!
//! - `connect`: TCP connect with a timeout and errors that name the endpoint; mutual TLS
//!   to peer proxies.
//! - `h1`: the HTTP/1.1 pool, and the response body read off a pooled connection.
//! - `h2`: shared HTTP/2 connections.
//! - [`tunnel`]: a `CONNECT` tunnel through a peer proxy, on a connection of its own.
//! - [`upgrade`]: one-off connections for upgrades, spliced to the client's once both switch.
//! - `reap`: closes a pool's idle connections now and then.

pub(crate) mod connect;
pub(crate) mod h1;
pub(crate) mod h2;
pub(crate) mod reap;
pub mod tunnel;
pub mod upgrade;

pub use connect::{ClientTls, Conn, Connector, OriginTls, Speaks};
pub use h1::{H1Pool, ResponseBody, UpstreamBody};
pub use h2::H2Pool;
