//! `CONNECT` tunnels to mesh services, for the clients that tunnel through `http_proxy`
//! (gRPC, WebSocket libraries, anything asked for `https://`).
//!
//! The outbound answers a `CONNECT` to a mesh service with `200` and reads what the app
//! sends first: HTTP (HTTP/1.x, or HTTP/2's preface) is served request by request, each
//! taking the outbound's way to the tunnel's service (`lifecycle::tunneled`); a TLS
//! handshake (the app's own HTTPS) is relayed as opaque bytes to an endpoint of the
//! service, through the proxy on its node, whose inbound ([`accept`]) connects it to the
//! instance. A host outside the mesh that `egress.hosts` lists for the port is a service
//! of its own (`host:port`) whose endpoints are its addresses, relayed to straight; any
//! other name gets `403`. An instance never sees `CONNECT`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use http::header::HeaderMap;
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use weft_core::headers::WEFT_DST_SERVICE;
use weft_http::client::tunnel;
use weft_http::server::{self, OnUpgrade};
use weft_http::{ClientBody, Rewind};
use weft_metrics::{Carried, Direction, Relay};

use crate::balancer::{EndpointState, Pick};
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::identify;
use crate::record;
use crate::respond;
use crate::services::{Service, Services};
use crate::shared::Shared;

/// Endpoints a relay tries before it gives up: no byte has gone upstream until one answers.
const RELAY_TRIES: usize = 3;

/// What serves each request inside an HTTP tunnel: the outbound's way, handed in by the
/// outbound, which is what opens tunnels.
pub(crate) type Tunneled = fn(
    Arc<Shared>,
    SocketAddr,
    &Service,
    &str,
    Request<ClientBody>,
) -> Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>;

/// An app's `CONNECT` to a mesh service: answered `200`, then served or relayed.
pub(crate) async fn open(
    shared: Arc<Shared>,
    app: SocketAddr,
    mut req: Request<ClientBody>,
    tunneled: Tunneled,
) -> Response<ProxyBody> {
    let start = Instant::now();
    let Some(upgrade) = req.extensions_mut().remove::<OnUpgrade>() else {
        return refused(
            &shared.outbound,
            start,
            ProxyError::BadRequest("CONNECT over HTTP/2 is not supported"),
        );
    };
    let target = match identify::tunnel(&shared.outbound, &shared.names, &shared.egress, &req).await
    {
        Ok(t) => t,
        Err(e) => return refused(&shared.outbound, start, e),
    };
    let service = target.service;
    let authority: Arc<str> = target.authority.into();
    tokio::spawn(async move {
        // The client's side arrives once the `200` has been written.
        if let Ok(io) = upgrade.get().await {
            serve(shared, app, service, authority, io, tunneled).await;
        }
    });
    Response::new(ProxyBody::full(""))
}

/// Serves a tunnel by what its client sends first, waiting for it no longer than for a
/// request head.
async fn serve(
    shared: Arc<Shared>,
    app: SocketAddr,
    service: Arc<Service>,
    authority: Arc<str>,
    mut io: Rewind,
    tunneled: Tunneled,
) {
    let first = tokio::time::timeout(shared.limits.header_read_timeout, io.peek(3)).await;
    let carried = match &first {
        Ok(Ok(bytes)) if is_tls(bytes) => Carried::Tls,
        Ok(Ok(bytes)) if !bytes.is_empty() => Carried::Http,
        _ => Carried::Nothing,
    };
    shared
        .tunnels
        .opened(Direction::Outbound, service.name.as_str(), carried);
    match carried {
        Carried::Http => {
            let handler = {
                let shared = Arc::clone(&shared);
                move |_, req| tunneled(Arc::clone(&shared), app, &service, &authority, req)
            };
            let (limits, draining) = (shared.limits, shared.draining.clone());
            // The tunnel's peer is the app, already counted by the listener it came through.
            let peer = SocketAddr::from(([0, 0, 0, 0], 0));
            server::serve_connection(io, peer, limits, draining, handler).await;
        }
        Carried::Tls => {
            // TLS cannot be matched on path or headers: a routed service's TLS goes to a
            // backend of its catch-all rule, drawn by weight; with none, nowhere.
            match relay_target(&shared, service).await {
                Ok(target) => relay(&shared, &target, io).await,
                Err(why) => {
                    tracing::info!(service = %why.0, "TLS to a routed service with no rule for every request; closed");
                }
            }
        }
        Carried::Nothing => {}
    }
}

/// Where a tunnel's TLS is relayed: the service itself, or for a routed one a backend of
/// its catch-all rule drawn by weight; an error (naming the service) when it has routes but
/// no such rule or backend.
async fn relay_target(
    shared: &Arc<Shared>,
    service: Arc<Service>,
) -> Result<Arc<Service>, NoRelay> {
    let Some(table) = service.routes() else {
        return Ok(service);
    };
    let Some(rule) = table.catch_all() else {
        return Err(NoRelay(service.name.clone()));
    };
    let routed = crate::routing::Routed { table, rule };
    match crate::routing::backend(&shared.outbound, &routed, 0).await {
        Ok((_, backend)) => Ok(backend),
        Err(_) => Err(NoRelay(service.name.clone())),
    }
}

struct NoRelay(weft_core::ServiceName);

/// A TLS record's first bytes: a handshake (22) of TLS 1.x (major version 3).
fn is_tls(first: &[u8]) -> bool {
    matches!(first, [0x16, 0x03, ..])
}

/// Relays the app's TLS to an endpoint of `service` as it is: through the proxy on the
/// endpoint's node, or straight to it. An endpoint that cannot be reached gives way to
/// another, since nothing has been sent to it.
async fn relay(shared: &Shared, service: &Arc<Service>, client: Rewind) {
    let policy = shared.policies.load().get(service.name.as_str());
    let mut tried = Vec::new();
    for _ in 0..RELAY_TRIES {
        let now = Instant::now();
        let endpoint = {
            let endpoints = service.endpoints();
            match shared
                .balancer
                .pick(&endpoints.list, &tried, &policy.policy.balancer, now)
            {
                Pick::Endpoint(e) => Arc::clone(e),
                Pick::AllEjected | Pick::Empty => break,
            }
        };
        let counted = shared
            .tunnels
            .relay(Direction::Outbound, service.name.as_str());
        let upstreams = &shared.upstreams;
        let opened = match endpoint.endpoint.node_proxy {
            Some(peer) => {
                let mut headers = HeaderMap::new();
                headers.insert(WEFT_DST_SERVICE, endpoint.route.clone());
                let node = endpoint.node.as_deref();
                match tunnel::open(
                    &upstreams.peer_connector,
                    peer,
                    node,
                    &endpoint.label,
                    headers,
                )
                .await
                {
                    Ok(upstream) => Ok(Upstream::Peer(upstream)),
                    Err(e) => Err(ProxyError::from(e)),
                }
            }
            None => match upstreams
                .h1
                .connector()
                .connect(endpoint.endpoint.addr)
                .await
            {
                Ok(upstream) => Ok(Upstream::Direct(upstream)),
                Err(e) => Err(ProxyError::from(e)),
            },
        };
        record::connected(
            &endpoint,
            opened.as_ref().err(),
            Instant::now(),
            &policy.policy,
        );
        match opened {
            Ok(Upstream::Peer(upstream)) => {
                return splice(client, upstream, counted, &endpoint).await
            }
            Ok(Upstream::Direct(upstream)) => {
                return splice(client, upstream, counted, &endpoint).await
            }
            Err(e) => {
                tracing::debug!(service = %service.name, endpoint = %endpoint.label, error = %e, "relay could not reach an endpoint");
                tried.push(endpoint.endpoint.addr);
            }
        }
    }
    tracing::debug!(service = %service.name, "relay found no endpoint to reach; closing the tunnel");
}

/// Where a relay's bytes go.
enum Upstream {
    /// The tunnel through the proxy on the endpoint's node.
    Peer(tunnel::Tunnel),
    /// The endpoint itself (it has no node proxy).
    Direct(tokio::net::TcpStream),
}

/// Copies both ways until either side ends, counting what moved.
async fn splice<A, B>(mut client: A, mut upstream: B, counted: Relay, endpoint: &EndpointState)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((read, written)) => counted.ended(read, written),
        Err(e) => {
            tracing::debug!(endpoint = %endpoint.label, error = %e, "relay ended");
            counted.ended(0, 0);
        }
    }
}

/// A peer proxy's tunnel to an endpoint on this node: the instance is connected first, so
/// a refusal reaches the peer as an answer it can act on (another endpoint), then the
/// tunnel is answered `200` and spliced to it.
pub(crate) async fn accept(
    shared: Arc<Shared>,
    mut req: Request<ClientBody>,
) -> Response<ProxyBody> {
    let start = Instant::now();
    let Some(upgrade) = req.extensions_mut().remove::<OnUpgrade>() else {
        return refused(
            &shared.inbound,
            start,
            ProxyError::BadRequest("CONNECT over HTTP/2 is not supported"),
        );
    };
    let target = match identify::inbound(&shared.inbound, &shared.names, &req).await {
        Ok(t) => t,
        Err(e) => return refused(&shared.inbound, start, e),
    };
    let service = target.service;
    let policy = shared.policies.load().get(service.name.as_str());
    let endpoint = match identify::local(&*shared.balancer, &service, &policy, target.endpoint) {
        Ok(e) => e,
        Err(e) => return respond::failed(&service.metrics, start, &e),
    };
    let connected = shared
        .upstreams
        .h1
        .connector()
        .connect(endpoint.endpoint.addr)
        .await;
    let instance = match connected {
        Ok(s) => s,
        Err(e) => return respond::failed(&endpoint.metrics, start, &ProxyError::from(e)),
    };
    let tunnels = shared.tunnels.clone();
    tunnels.opened(Direction::Inbound, service.name.as_str(), Carried::Tls);
    let counted = tunnels.relay(Direction::Inbound, service.name.as_str());
    tokio::spawn(async move {
        if let Ok(io) = upgrade.get().await {
            splice(io, instance, counted, &endpoint).await;
        }
    });
    Response::new(ProxyBody::full(""))
}

/// A `CONNECT` refused before its service was known, counted under the unknown service.
fn refused(side: &Services, start: Instant, err: ProxyError) -> Response<ProxyBody> {
    respond::failed(side.unknown_metrics(), start, &err)
}
