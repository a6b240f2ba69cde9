//! The ports weft's parts listen on by default (shared/DESIGN.md, "Names"): one home for
//! every default address, flag and client that names them.

use std::net::{Ipv4Addr, SocketAddr};

/// A node proxy's outbound listener: apps send here (`http_proxy`).
pub const OUTBOUND: u16 = 4140;
/// A node proxy's inbound listener: peer proxies send here.
pub const INBOUND: u16 = 4141;
/// Admin and metrics, on proxies and the control plane.
pub const ADMIN: u16 = 9990;
/// The control plane's Destination API.
pub const CONTROL: u16 = 8086;
/// The dashboard, its JSON API and `weft stat`'s default.
pub const DASHBOARD: u16 = 8084;

/// `port` on every interface.
pub fn any(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
}

/// `port` on loopback only.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}
