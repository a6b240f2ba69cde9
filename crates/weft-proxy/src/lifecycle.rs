//! The request's way through the proxy, top to bottom: every step is one call with its
//! reason above it, and the work happens in the module it names.
//!
//! Outbound (an app's request to a service), [`outbound`]:
//!   accept ([`weft_http::server`]) → admit ([`crate::admission`]) → screen, name the
//!   service (or a listed host outside the mesh), look it up ([`identify::outbound`]) → the
//!   hops it made, and an app's staging override ([`carried`]) → the rule of its routes, if
//!   it has any ([`routing`]) → with tracing on, its id and its trace ([`trace`]) →
//!   [`forward`]: its policy ([`crate::resilience::policy`]) → a tap, when a subscriber's
//!   filter takes it ([`tap`]) → the deadline ([`Deadline`]) → strip what only the mesh
//!   may set ([`mesh`]) → attempts ([`attempts`]), each: balance ([`crate::balancer`]) →
//!   forward over the peer's shared HTTP/2 hop, or straight to the endpoint, one more hop
//!   ([`delivery`]) → record the outcome ([`record::attempt`]), each attempt a span →
//!   retry? ([`crate::resilience::retry`]) → respond, the body recording its end
//!   ([`crate::body`]) and the request's spans (and tap) ending with it.
//!
//! The ingress ([`crate::ingress`]) joins at [`forward`] with the rule its own routes chose.
//!
//! A `CONNECT` opens a tunnel to a mesh service ([`tunnel`]); the requests inside take the
//! outbound's way from its policy on ([`tunneled`]), and TLS inside is relayed whole.
//!
//! Inbound (a peer proxy's request for an instance on this node), [`inbound`]:
//!   accept → the dashboard's identity may only tap ([`tap::remote`]) → admit → screen,
//!   name the service and the endpoint the peer chose ([`identify::inbound`]) → refuse
//!   anything not on this node → the deadline → the hop count, and a peer's override only
//!   if the peer is trusted ([`carried`]) → its trace ([`trace`]), with this proxy's span
//!   the app's parent → a tap ([`tap`]) → deliver in the instance's protocol
//!   ([`delivery::deliver`]) → respond, record.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderValue, HOST};
use http::{Method, Request, Response, Version};
use weft_core::headers::WEFT_ORIG_PROTO;
use weft_core::tap::TapDirection;
use weft_http::server::{OnUpgrade, PeerIdentity};
use weft_http::timers::Timers;
use weft_http::{headers, ClientBody};
use weft_metrics::Classification;

use crate::attempts::attempts;
use crate::body::{self, ProxyBody};
use crate::carried;
use crate::context::Ctx;
use crate::delivery::{self, Failed};
use crate::error::ProxyError;
use crate::identify::{self, Target};
use crate::mesh;
use crate::record;
use crate::replay::RequestBody;
use crate::resilience::deadline::Deadline;
use crate::respond;
use crate::routing::{self, Routed};
use crate::services::{Service, Services};
use crate::shared::Shared;
use crate::tap;
use crate::trace::{self, RequestTrace};
use crate::tunnel;

pub(crate) async fn outbound(
    shared: Arc<Shared>,
    source: SocketAddr,
    mut req: Request<ClientBody>,
) -> Response<ProxyBody> {
    // A tunnel to a mesh service, whose requests come back through `tunneled`. Boxed: rare,
    // and its state would enlarge every request's future.
    if req.method() == Method::CONNECT {
        return Box::pin(tunnel::open(shared, source, req, tunneled)).await;
    }
    let start = Instant::now();
    // Past the listener's bound on requests in flight, turned away before any work.
    let _admitted = match shared.outbound_in_flight.admit() {
        Ok(a) => a,
        Err(e) => return refused(&shared.outbound, start, e),
    };
    // Refuse what cannot be forwarded safely; the service is the one the authority names.
    let target =
        match identify::outbound(&shared.outbound, &shared.names, &shared.egress, &req).await {
            Ok(t) => t,
            Err(e) => return refused(&shared.outbound, start, e),
        };
    let mut service = target.service;
    // A request that has made too many hops is looping.
    let seen = mesh::scan(req.headers());
    let hops = match carried::hops(req.headers(), seen, shared.config.context.max_hops) {
        Ok(h) => h,
        Err(e) => return respond::failed(&service.metrics, start, &e),
    };
    // An app on this node may send its call, and every later one, to a staging version.
    match carried::override_target(&shared.names, req.headers(), seen, service.name.as_str()) {
        Ok(None) => {}
        Ok(Some(to)) => match identify::overridden(&shared.outbound, &shared.egress, &to).await {
            Ok(s) => service = s,
            Err(e) => return respond::failed(&service.metrics, start, &e),
        },
        Err(e) => return respond::failed(&service.metrics, start, &e),
    }
    // The rule of the service's routes that takes the request, when it has routes.
    let routed = match routing::route(&service, &req) {
        Ok(r) => r,
        Err(e) => return respond::failed(&service.metrics, start, &e),
    };
    // With tracing on, the request joins its trace (or starts one) under an id of its own.
    let trace = shared.tracer.as_ref().map(|tracer| {
        if !seen.request_id() {
            carried::make_request_id(req.headers_mut());
        }
        tracer.join(req.headers(), trace::Kind::Outbound, start)
    });
    forward(
        &shared,
        start,
        service,
        target.authority,
        routed,
        Arrived {
            source,
            seen,
            hops,
            trace,
        },
        req,
    )
    .await
}

/// The outbound's way once the service (and the rule, with routes) is known; the ingress
/// joins it here with the rule its own routes chose.
pub(crate) async fn forward(
    shared: &Shared,
    start: Instant,
    service: Arc<Service>,
    authority: String,
    routed: Option<Routed>,
    Arrived {
        source,
        seen,
        hops,
        trace,
    }: Arrived,
    mut req: Request<ClientBody>,
) -> Response<ProxyBody> {
    // The service's policy; with routes, the matched rule's over it.
    let mut policy = shared.policies.load().get(service.name.as_str());
    if let Some(r) = &routed {
        policy = r.rule().policy(&policy);
    }
    // The deadline the policy and the caller allow.
    let deadline = Deadline::effective(req.headers(), policy.policy.timeout.total, start);
    let mut ctx = Ctx::new(start, service, policy, authority, deadline);
    ctx.routed = routed;
    ctx.hops = hops;
    ctx.trace = trace.map(|mut t| {
        t.describe(&req, Some(&ctx.service.name));
        t
    });
    // A tap subscriber whose filter takes the request is sent its events.
    ctx.tap = tap::arrived(shared, &ctx, TapDirection::Outbound, (source, None), &req);
    if ctx.expired() {
        return ctx.fail(ProxyError::DeadlineExceeded);
    }
    // Only the mesh may set routing headers; hop-by-hop headers die here.
    ctx.upgrade = take_upgrade(&mut req);
    mesh::strip(req.headers_mut(), seen);
    headers::strip_hop_by_hop(req.headers_mut(), ctx.upgrade.is_some());
    // Attempts until one's answer is final, all within the deadline. Boxed: the attempt
    // machinery is kilobytes of state, and the handler's future is moved several times.
    let total = ctx.policy.policy.timeout.total;
    let work = Box::pin(attempts(shared, &mut ctx, req));
    let result = within(&shared.upstreams.timers, deadline, work, |d| {
        if d.from_caller {
            ProxyError::DeadlineExceeded
        } else {
            ProxyError::Timeout { timeout: total }
        }
    })
    .await;
    match result {
        Ok(rsp) => rsp,
        Err(e) => ctx.fail(e),
    }
}

/// A request an app sent inside a tunnel to `service` (opened for `tunnel`, its target):
/// it may name no other service, and then takes the outbound's way like any other. Boxed
/// behind a plain function: the outbound opened the tunnel this request came through.
pub(crate) fn tunneled(
    shared: Arc<Shared>,
    app: SocketAddr,
    service: &Service,
    tunnel: &str,
    mut req: Request<ClientBody>,
) -> Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>> {
    let start = Instant::now();
    let checked = match req.method() {
        &Method::CONNECT => Err(ProxyError::BadRequest("CONNECT inside a tunnel")),
        _ => identify::in_tunnel(&shared.names, service, tunnel, &req),
    };
    match checked {
        Ok(authority) => {
            // A request that names nothing (HTTP/1.0 without Host) goes to the tunnel's.
            if headers::authority(&req).is_none() {
                if let Ok(host) = HeaderValue::from_str(&authority) {
                    req.headers_mut().insert(HOST, host);
                }
            }
            Box::pin(outbound(shared, app, req))
        }
        Err(e) => Box::pin(std::future::ready(respond::failed(
            &service.metrics,
            start,
            &e,
        ))),
    }
}

pub(crate) async fn inbound(
    shared: Arc<Shared>,
    source: SocketAddr,
    mut req: Request<ClientBody>,
) -> Response<ProxyBody> {
    // A peer proxy's tunnel to an endpoint on this node (an app's TLS, relayed). Boxed:
    // rare, and its state would enlarge every request's future.
    let peer = req.extensions().get::<PeerIdentity>().map(|p| &*p.0);
    shared.peers.request(peer);
    // The dashboard's identity may tap this proxy, and do nothing else here.
    if let (Some(p), Some(tapper)) = (peer, shared.tapper.as_deref()) {
        if p == tapper {
            return tap::remote(&shared, &req);
        }
    }
    if req.method() == Method::CONNECT {
        return Box::pin(tunnel::accept(shared, req)).await;
    }
    let start = Instant::now();
    let _admitted = match shared.inbound_in_flight.admit() {
        Ok(a) => a,
        Err(e) => return refused(&shared.inbound, start, e),
    };
    // The peer names the service and the endpoint it chose; a client outside the mesh
    // names only the service.
    let Target {
        service,
        authority,
        endpoint: wanted,
    } = match identify::inbound(&shared.inbound, &shared.names, &req).await {
        Ok(t) => t,
        Err(e) => return refused(&shared.inbound, start, e),
    };
    let policy = shared.policies.load().get(service.name.as_str());
    // A request whose caller has given up is not delivered.
    let deadline = Deadline::effective(req.headers(), Duration::ZERO, start);
    let mut ctx = Ctx::new(start, service, policy, authority, deadline);
    if ctx.expired() {
        return ctx.fail(ProxyError::DeadlineExceeded);
    }
    // Not an open relay: the inbound side knows only endpoints on this node.
    let endpoint = match identify::local(&*shared.balancer, &ctx.service, &ctx.policy, wanted) {
        Ok(e) => e,
        Err(e) => return ctx.fail(e),
    };
    // Handing the request to the app is one more hop; an override reaches the app only
    // from a peer trusted to set one.
    let mut seen = mesh::scan(req.headers());
    let hops = match carried::hops(req.headers(), seen, shared.config.context.max_hops) {
        Ok(hops) => hops,
        Err(e) => return ctx.fail(e),
    };
    if seen.overrides() {
        let peer = peer_identity(&req);
        seen = carried::screen_peer_override(&shared, req.headers_mut(), seen, peer.as_deref());
    }
    // With tracing on, the app is handed this proxy's span as its parent.
    if let Some(tracer) = &shared.tracer {
        let mut t = tracer.join(req.headers(), trace::Kind::Inbound, start);
        t.describe(&req, Some(&ctx.service.name));
        t.peer(peer_identity(&req));
        ctx.trace = Some(t);
    }
    ctx.endpoint = Some(Arc::clone(&endpoint));
    // A tap subscriber whose filter takes the request is sent its events.
    let arrival = (source, peer_identity(&req));
    ctx.tap = tap::arrived(&shared, &ctx, TapDirection::Inbound, arrival, &req);
    let load = endpoint.start();
    // Restore what the client spoke before the hop upgraded it, and take the mesh's
    // headers off; the instance gets the deadline itself.
    let orig = original_version(&req);
    let upgrade = take_upgrade(&mut req);
    mesh::strip(req.headers_mut(), seen);
    headers::strip_hop_by_hop(req.headers_mut(), upgrade.is_some());
    // Set after the hop-by-hop headers go: `Connection` cannot name them away.
    carried::count_hop(req.headers_mut(), hops);
    if let Some(t) = &ctx.trace {
        t.to_app(req.headers_mut());
    }
    if let Some(d) = deadline {
        d.to_instance(req.headers_mut(), start);
    }
    // Deliver in the protocol the instance speaks, no later than the deadline.
    let ep = &endpoint.endpoint;
    let req = req.map(RequestBody::streaming);
    let upstreams = &shared.upstreams;
    let work = Box::pin(delivery::deliver(
        upstreams,
        delivery::Hop::Instance(ep.addr),
        ep.protocol,
        req,
        &ctx.authority,
        orig,
        upgrade,
    ));
    let sent = within(&upstreams.timers, deadline, work, |_| {
        ProxyError::DeadlineExceeded.into()
    })
    .await;
    let class = record::attempt_counted(&endpoint, delivery::answer(&sent));
    match sent {
        Ok(mut rsp) => {
            let failed = class == Classification::Failure;
            // The mark goes on after the app's hop-by-hop headers are gone, which could
            // name it away.
            let kept = ctx.trace.as_mut().and_then(|t| {
                let switching = rsp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                headers::strip_hop_by_hop(rsp.headers_mut(), switching);
                t.answered(rsp.headers_mut(), failed)
            });
            let (now, status) = (Instant::now(), rsp.status());
            let mut completion = record::answered(&endpoint, start, now, status, class, load, kept);
            completion.traced(ctx.trace.take());
            if let Some(mut t) = ctx.tap.take() {
                t.answered(
                    now,
                    tap::Answer {
                        failed,
                        ..ctx.answer(Some(&rsp), None)
                    },
                );
                completion.tapped(t);
            }
            body::forwarded(rsp, completion)
        }
        Err(Failed { error, .. }) => ctx.fail(error),
    }
}

/// What the outbound (or the ingress) has learned of a request when it hands it to
/// [`forward`].
pub(crate) struct Arrived {
    /// The client's address.
    pub source: SocketAddr,
    /// The mesh's headers it carries.
    pub seen: mesh::Seen,
    /// The proxy hops it has made.
    pub hops: u32,
    /// Its trace, with tracing on.
    pub trace: Option<Box<RequestTrace>>,
}

fn peer_identity<B>(req: &Request<B>) -> Option<Arc<str>> {
    req.extensions()
        .get::<PeerIdentity>()
        .map(|p| Arc::clone(&p.0))
}

/// A request refused before its service was known, counted under the unknown service.
fn refused(side: &Services, start: Instant, err: ProxyError) -> Response<ProxyBody> {
    respond::failed(side.unknown_metrics(), start, &err)
}

/// `work`, given up once `deadline` passes; dropping it cancels what it sent upstream (an
/// h2 reset, or the connection closed). `expired` says what the client is told then.
async fn within<T, E>(
    timers: &Timers,
    deadline: Option<Deadline>,
    work: impl Future<Output = Result<T, E>>,
    expired: impl FnOnce(Deadline) -> E,
) -> Result<T, E> {
    match deadline {
        Some(d) => match timers.bound(Some(d.at), work).await {
            Some(done) => done,
            None => Err(expired(d)),
        },
        None => work.await,
    }
}

/// The version the client spoke before the hop upgraded it: `weft-orig-proto` says when it
/// was not HTTP/1.1.
fn original_version<B>(req: &Request<B>) -> Version {
    match req
        .headers()
        .get(WEFT_ORIG_PROTO)
        .map(HeaderValue::as_bytes)
    {
        Some(b"HTTP/1.0") => Version::HTTP_10,
        Some(b"HTTP/1.1") => Version::HTTP_11,
        _ => req.version(),
    }
}

/// The client's side of a WebSocket (or other) upgrade, when it asks for one.
fn take_upgrade(req: &mut Request<ClientBody>) -> Option<OnUpgrade> {
    // The HTTP/1 listener attaches a handle only to heads that ask to upgrade: without one
    // (nearly always) there are no headers to look up.
    if req.extensions().get::<OnUpgrade>().is_none() || !headers::is_upgrade(req) {
        return None;
    }
    req.extensions_mut().remove::<OnUpgrade>()
}
