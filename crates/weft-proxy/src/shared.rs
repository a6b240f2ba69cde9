//! What every request's handler shares: built once when the proxy starts, never per request.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use weft_core::config::ProxyConfig;
use weft_core::NameRules;
use weft_http::server::Limits;
use weft_metrics::TunnelMetrics;

use crate::admission::InFlight;
use crate::balancer::Balance;
use crate::delivery::Upstreams;
use crate::egress::list::EgressList;
use crate::resilience::policy::Table as PolicyTable;
use crate::services::Services;

pub(crate) struct Shared {
    pub config: ProxyConfig,
    pub names: NameRules,
    /// Hosts outside the mesh apps may call.
    pub egress: EgressList,
    pub outbound: Arc<Services>,
    pub inbound: Arc<Services>,
    pub balancer: Box<dyn Balance>,
    pub upstreams: Upstreams,
    /// This node's inbound address as peers know it; marks which endpoints are local.
    pub advertise: SocketAddr,
    /// Per-service resilience, swapped whole when the config file changes.
    pub policies: Arc<ArcSwap<PolicyTable>>,
    /// The listeners' limits, which a tunnel's connection is served under too.
    pub limits: Limits,
    /// Turns true when the proxy drains; a tunnel's connection drains with the listeners'.
    pub draining: watch::Receiver<bool>,
    pub tunnels: TunnelMetrics,
    /// Requests at the inbound by how the peer came (mutual TLS and who, or plaintext).
    pub peers: weft_metrics::PeerMetrics,
    /// `weft-ctx-*` headers dropped from sources that may not set them.
    pub context: weft_metrics::ContextMetrics,
    /// This proxy's mesh identity, when the hop between proxies is mutual TLS.
    pub identity: Option<weft_identity::Identity>,
    /// Spans of the requests carried, with tracing on.
    pub tracer: Option<Arc<crate::trace::Tracer>>,
    /// Live copies of requests for tap subscribers.
    pub taps: Arc<crate::tap::Taps>,
    /// The dashboard's mesh identity, which the inbound lets tap and nothing else.
    pub tapper: Option<Box<str>>,
    /// Requests waiting for their answer, per listener, and their bounds.
    pub outbound_in_flight: InFlight,
    /// Outside callers' own bound: they cannot use up the node's apps' share.
    pub ingress_in_flight: InFlight,
    pub inbound_in_flight: InFlight,
}
