//! An endpoint is one instance of a service; an endpoint set is what discovery hands out,
//! and a [`Resolution`] what a source knows of a service right now.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The protocol an instance speaks; the inbound side delivers in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c), as gRPC servers speak.
    Http2,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Where the instance listens.
    pub addr: SocketAddr,
    /// The inbound listener of the proxy on the instance's node; `None` when it has none,
    /// in which case outbound proxies send to `addr` directly.
    #[serde(default, rename = "node", skip_serializing_if = "Option::is_none")]
    pub node_proxy: Option<SocketAddr>,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_weight() -> u32 {
    1
}

/// A service's endpoints at one moment, and the ports the service is reached on when its
/// source knows them (a Kubernetes Service's ports; a discovery file's `ports`). Shared,
/// never mutated; it reads as the slice of its endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointSet {
    endpoints: Arc<[Endpoint]>,
    ports: Arc<[u16]>,
    failover: Arc<[String]>,
}

/// The endpoint label that names an instance's zone, by which failover groups endpoints.
pub const ZONE_LABEL: &str = "zone";

impl EndpointSet {
    pub fn new(endpoints: impl Into<Arc<[Endpoint]>>, ports: impl Into<Arc<[u16]>>) -> Self {
        Self {
            endpoints: endpoints.into(),
            ports: ports.into(),
            failover: Arc::new([]),
        }
    }

    /// The same set, whose endpoints are taken zone by zone in `zones`' order: the next
    /// zone only while every endpoint of those before fails; endpoints of zones not listed
    /// last.
    pub fn with_failover(mut self, zones: impl Into<Arc<[String]>>) -> Self {
        self.failover = zones.into();
        self
    }

    /// Zones in order of preference; empty: no failover, every endpoint alike.
    pub fn failover(&self) -> &[String] {
        &self.failover
    }

    /// An endpoint's failover group: its zone's place in [`Self::failover`].
    pub fn group_of(&self, endpoint: &Endpoint) -> usize {
        let zone = endpoint.labels.get(ZONE_LABEL);
        self.failover
            .iter()
            .position(|z| Some(z) == zone)
            .unwrap_or(self.failover.len())
    }

    /// The service's ports; empty when its source does not say.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Whether `port` is one the service is reached on: any is, when its ports are unknown.
    pub fn has_port(&self, port: u16) -> bool {
        self.ports.is_empty() || self.ports.contains(&port)
    }
}

impl std::ops::Deref for EndpointSet {
    type Target = [Endpoint];

    fn deref(&self) -> &[Endpoint] {
        &self.endpoints
    }
}

/// Endpoints alone: a service whose ports its source does not say.
impl From<Vec<Endpoint>> for EndpointSet {
    fn from(endpoints: Vec<Endpoint>) -> Self {
        Self::new(endpoints, Vec::new())
    }
}

impl FromIterator<Endpoint> for EndpointSet {
    fn from_iter<I: IntoIterator<Item = Endpoint>>(iter: I) -> Self {
        Self::new(iter.into_iter().collect::<Vec<_>>(), Vec::new())
    }
}

/// What a source knows of one service right now.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolution {
    /// The service exists; the set may be empty.
    Endpoints(EndpointSet),
    /// The service was removed (or never existed) after the watch began.
    DoesNotExist,
    /// The source has not answered yet (a remote source's first lookup).
    Pending,
}
