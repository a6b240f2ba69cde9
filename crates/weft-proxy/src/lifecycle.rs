//! The request's way through the proxy, top to bottom. Each step is one line with its reason;
//! the work happens in the module it links to.
//!
//! Outbound (an app's request to a service):
//!   accept ([`crate::server`]) → screen framing ([`headers::check_framing`]) → name the
//!   service ([`weft_core::NameRules`]) → resolve ([`Services::get`]) → its policy
//!   ([`crate::resilience::policy`]) → deadline ([`Deadline`]) → keep a small body for replay
//!   ([`retry::keep`]) → attempts, each: balance ([`Balance::pick`]) → forward over the
//!   peer's shared HTTP/2 hop, or straight to the endpoint ([`crate::client`]) → judge
//!   (accrual, EWMA, retry?) → respond and record ([`forwarded`], [`crate::body`]).
//!
//! Inbound (a peer proxy's request for an instance on this node):
//!   accept → screen → name the service and endpoint the peer chose → refuse anything not on
//!   this node → enforce the deadline → deliver in the instance's protocol → respond, record.

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::header::{HeaderValue, HOST};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use weft_core::config::ProxyConfig;
use weft_core::error::Side;
use weft_core::headers::{WEFT_DST_SERVICE, WEFT_ORIG_PROTO};
use weft_core::{NameRules, Protocol, ProxyError, ServiceName};
use weft_metrics::{Classification, RouteMetrics};

use crate::balancer::{Balance, EndpointState, LoadGuard, Pick};
use crate::body::{classify, ClientBody, Completion, ProxyBody, RequestBody};
use crate::client::h1::{H1Pool, ResponseBody, UpstreamBody};
use crate::client::h2::H2Pool;
use crate::client::SendError;
use crate::delivery::{Bounded, Delivery, H2Sent, Sent};
use crate::h1::OnUpgrade;
use crate::headers;
use crate::resilience::deadline::Deadline;
use crate::resilience::policy::{Compiled, Table as PolicyTable};
use crate::resilience::timers::Timers;
use crate::respond::error_response;
use crate::retry::{self, Kept};
use crate::services::{Lookup, Service, Services};

/// Everything the handlers share; built once by [`crate::proxy`].
pub struct Shared {
    pub config: ProxyConfig,
    pub names: NameRules,
    pub outbound: Arc<Services>,
    pub inbound: Arc<Services>,
    pub balancer: Box<dyn Balance>,
    pub h1: Arc<H1Pool>,
    pub h2: Arc<H2Pool>,
    /// This node's inbound address as peers know it; marks which endpoints are local.
    pub advertise: SocketAddr,
    /// Per-service resilience, swapped whole when the config file changes.
    pub policies: Arc<ArcSwap<PolicyTable>>,
    /// Deadline timers, kept between requests.
    pub timers: Timers,
}

/// One request's state as it moves through the steps.
struct Ctx {
    start: Instant,
    /// Where the client's view is counted until an endpoint answers.
    route: RouteMetrics,
    endpoint: Option<Arc<EndpointState>>,
}

impl Ctx {
    fn new(route: &RouteMetrics) -> Self {
        Self {
            start: Instant::now(),
            route: route.clone(),
            endpoint: None,
        }
    }

    fn fail(&self, err: ProxyError) -> Response<ProxyBody> {
        tracing::debug!(error = %err, "request failed");
        let route = self.endpoint.as_ref().map_or(&self.route, |e| &e.metrics);
        route.request();
        route.latency(self.start.elapsed());
        route.response(err.status().as_u16(), Classification::Failure, err.kind());
        error_response(&err)
    }
}

pub async fn outbound(shared: Arc<Shared>, mut req: Request<ClientBody>) -> Response<ProxyBody> {
    let mut ctx = Ctx::new(shared.outbound.unknown_metrics());
    // Ambiguous framing is refused before anything else reads the request.
    if let Err(why) = headers::check_framing(&req) {
        return ctx.fail(ProxyError::BadRequest(why));
    }
    // The service is named by the authority: absolute-form URI, :authority, or Host.
    let Some(authority) = headers::authority(&req).map(str::to_owned) else {
        return ctx.fail(ProxyError::MissingAuthority);
    };
    let Some(name) = shared.names.service_name(&authority) else {
        return ctx.fail(ProxyError::UnknownService(authority));
    };
    let service = match shared.outbound.get(&name).await {
        Ok(s) => s,
        Err(Lookup::Unknown) => return ctx.fail(ProxyError::UnknownService(authority)),
        Err(Lookup::Unavailable) => {
            let service = ServiceName::new(&name);
            return ctx.fail(ProxyError::DiscoveryUnavailable { service });
        }
    };
    ctx.route = service.metrics.clone();
    // The service's policy, and the deadline it and the caller allow.
    let policy = shared.policies.load().get(service.name.as_str());
    let deadline = Deadline::effective(req.headers(), policy.policy.timeout.total, ctx.start);
    if deadline.is_some_and(|d| d.expired(ctx.start)) {
        return ctx.fail(ProxyError::DeadlineExceeded);
    }
    // Only the mesh may set routing headers; hop-by-hop headers die here.
    let upgrade = take_upgrade(&mut req);
    headers::strip_mesh_headers(req.headers_mut());
    headers::strip_hop_by_hop(req.headers_mut(), upgrade.is_some());
    // Boxed: the attempt machinery is kilobytes of state, and the handler's future is moved
    // (into the connection's box, through the attempt's layers) several times per request.
    let work = Box::pin(attempts(
        &shared, &mut ctx, &service, &policy, req, &authority, deadline, upgrade,
    ));
    let result = match deadline {
        Some(d) => match shared.timers.bound(Some(d.at), work).await {
            Some(r) => r,
            // Dropping the attempt cancels it upstream (h2 reset, or the connection closed).
            None if d.from_caller => Err(ProxyError::DeadlineExceeded),
            None => Err(ProxyError::Timeout {
                timeout: policy.policy.timeout.total,
            }),
        },
        None => work.await,
    };
    match result {
        Ok(rsp) => rsp,
        Err(e) => ctx.fail(e),
    }
}

/// Sends the request until an attempt's answer is final: balance, forward, judge, and retry
/// what the policy, the budget and the body allow.
#[allow(clippy::too_many_arguments)]
fn attempts<'a>(
    shared: &'a Shared,
    ctx: &'a mut Ctx,
    service: &'a Arc<Service>,
    policy: &'a Compiled,
    req: Request<ClientBody>,
    authority: &'a str,
    deadline: Option<Deadline>,
    mut upgrade: Option<OnUpgrade>,
) -> impl Future<Output = Result<Response<ProxyBody>, ProxyError>> + 'a {
    // Prepared before the future is made: an async fn keeps room for its arguments all its
    // life, so the request would be held twice, and this future is copied whole when boxed.
    let (parts, body) = req.into_parts();
    let rules = &policy.policy;
    let method = parts.method.clone();
    // Small bodies are kept so a retry can send them again (none is, with retries off).
    let body = if upgrade.is_some() || rules.retry.max_retries == 0 {
        Kept::Now((RequestBody::streaming(body), false))
    } else {
        retry::keep(body, rules.retry.buffer_limit)
    };
    // Without retries the one attempt takes the request's parts as they are; a copy of the
    // headers per attempt is only worth making when a second attempt can happen.
    let mut parts = Some(parts);
    async move {
        let (body, replayable) = match body {
            Kept::Now(replay) => replay,
            Kept::Reading(reading) => reading.await?,
        };
        let mut body = Some(body);
        // The request's start stands in for now: the budget counts whole seconds.
        service.budget.deposit(ctx.start);
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut retries = 0u32;
        loop {
            // One clock reading serves the pick and the attempt's start.
            let sent_at = Instant::now();
            let endpoint = {
                let endpoints = service.endpoints();
                match shared
                    .balancer
                    .pick(&endpoints.list, &tried, &rules.balancer, sent_at)
                {
                    Pick::Endpoint(e) => Arc::clone(e),
                    Pick::AllEjected => {
                        return Err(ProxyError::CircuitOpen {
                            service: service.name.clone(),
                        })
                    }
                    Pick::Empty => {
                        return Err(ProxyError::NoEndpoints {
                            service: service.name.clone(),
                        })
                    }
                }
            };
            ctx.endpoint = Some(Arc::clone(&endpoint));
            let this_body = match body.as_ref().and_then(RequestBody::replay) {
                Some(copy) => copy,
                None => body.take().unwrap_or_else(RequestBody::empty),
            };
            let aborted = this_body.abort_flag();
            let attempt_req = match parts.as_ref() {
                Some(p) if rules.retry.max_retries > 0 => retry::rebuild(p, this_body),
                _ => match parts.take() {
                    Some(p) => Request::from_parts(p, this_body),
                    None => unreachable!("without retries there is one attempt"),
                },
            };
            let load = endpoint.start();
            let sent = send_one(
                shared,
                &endpoint,
                attempt_req,
                authority,
                upgrade.take(),
                rules.timeout.per_attempt,
                deadline,
                sent_at,
            )
            .await;
            let now = Instant::now();
            endpoint
                .ewma
                .observe(now - sent_at, now, rules.balancer.decay);
            let mut sent = sent;
            if let Err(e) = &mut sent {
                if aborted.is_some_and(|a| a.load(std::sync::atomic::Ordering::Relaxed)) {
                    e.error = ProxyError::ClientAborted;
                }
            }
            // Whether the answer is worth another attempt is only asked while one may follow.
            let may_retry = retries < rules.retry.max_retries;
            let (retryable, class) = match &sent {
                Ok(rsp) => (
                    may_retry && policy.retryable_response(&method, rsp.status(), rsp.headers()),
                    classify(rsp.status(), rsp.headers()),
                ),
                Err(e) => (
                    may_retry && policy.retryable_error(&method, &e.error),
                    Classification::Failure,
                ),
            };
            let success = class == Classification::Success;
            // A client that went away says nothing about the endpoint.
            let blame_endpoint = !matches!(&sent, Err(e) if e.error.side() == Side::Downstream);
            if blame_endpoint {
                endpoint.accrual.record(success, now, &rules.accrual);
            }
            endpoint.metrics.attempt(class);
            // A connect failure hands the request back, so even a streamed body can go again.
            if let Err(SendError {
                request: Some(r), ..
            }) = &mut sent
            {
                if body.is_none() {
                    let unsent = std::mem::replace(r.body_mut(), RequestBody::empty());
                    body = Some(unsent);
                }
            }
            let can_resend = replayable || body.is_some();
            let time_left = deadline.is_none_or(|d| d.at > now + Duration::from_millis(1));
            if retryable && can_resend && time_left {
                if service.budget.try_withdraw(now, &rules.retry) {
                    retries += 1;
                    service.counters.retries.inc();
                    tried.push(endpoint.endpoint.addr);
                    drop(sent);
                    drop(load);
                    // Boxed, like the body's collection: a timer is large, and retries are rare.
                    Box::pin(tokio::time::sleep(retry::backoff(
                        retries,
                        rules.retry.backoff,
                        rules.retry.backoff_max,
                    )))
                    .await;
                    continue;
                }
                service.counters.budget_exhausted.inc();
            }
            return match sent {
                Ok(rsp) => Ok(forwarded(ctx, &endpoint, rsp, class, load, now)),
                Err(e) => Err(e.error),
            };
        }
    }
}

/// One attempt to one endpoint: through the peer proxy on its node (the shared HTTP/2 hop),
/// or straight to it; bounded by the per-attempt timeout, and carrying the deadline as of
/// `now`. The exchange is prepared here and the future returned only waits for it.
#[allow(clippy::too_many_arguments)]
fn send_one<'a>(
    shared: &'a Shared,
    endpoint: &EndpointState,
    mut req: Request<RequestBody>,
    authority: &'a str,
    upgrade: Option<OnUpgrade>,
    per_attempt: Duration,
    deadline: Option<Deadline>,
    now: Instant,
) -> impl Future<Output = Sent> + 'a {
    let orig = req.version();
    let ep = &endpoint.endpoint;
    let (addr, protocol) = match ep.node_proxy {
        Some(peer) => {
            let h = req.headers_mut();
            h.insert(WEFT_DST_SERVICE, endpoint.route.clone());
            // A peer proxy is told the time left; an instance (below), the deadline itself.
            if let Some(d) = deadline {
                d.to_peer(h, now);
            }
            // The hop is HTTP/2 whatever the client spoke; the far side restores it. Only
            // HTTP/1.0 needs saying: without the header an instance gets HTTP/1.1 (or its
            // own HTTP/2), and every header on the hop costs HPACK work at both ends. An
            // upgrade crosses as HTTP/1.1 on a connection of its own.
            if upgrade.is_none() && orig == Version::HTTP_10 {
                h.insert(WEFT_ORIG_PROTO, HeaderValue::from_static("HTTP/1.0"));
            }
            (peer, Protocol::Http2)
        }
        None => {
            if let Some(d) = deadline {
                d.to_instance(req.headers_mut(), now);
            }
            (ep.addr, ep.protocol)
        }
    };
    // The delivery is made in its place in the struct: made beside it, it was copied in.
    Bounded {
        attempt: shared.timers.bound(
            (!per_attempt.is_zero()).then(|| now + per_attempt),
            deliver(shared, addr, protocol, req, authority, orig, upgrade),
        ),
        endpoint: ep.addr,
        timeout: per_attempt,
    }
}

pub async fn inbound(shared: Arc<Shared>, mut req: Request<ClientBody>) -> Response<ProxyBody> {
    let mut ctx = Ctx::new(shared.inbound.unknown_metrics());
    if let Err(why) = headers::check_framing(&req) {
        return ctx.fail(ProxyError::BadRequest(why));
    }
    let Some(authority) = headers::authority(&req).map(str::to_owned) else {
        return ctx.fail(ProxyError::MissingAuthority);
    };
    // The peer names the service and endpoint it chose; a client outside the mesh names
    // only the service, and gets a local instance of it.
    let (named, wanted) = match req.headers().get(WEFT_DST_SERVICE) {
        Some(v) => match v.to_str().ok().and_then(headers::dst_service) {
            Some((service, endpoint)) => (Some(Cow::Borrowed(service)), endpoint),
            None => return ctx.fail(ProxyError::BadRequest("malformed weft-dst-service")),
        },
        None => (shared.names.service_name(&authority), None),
    };
    let Some(name) = named else {
        return ctx.fail(ProxyError::UnknownService(authority));
    };
    let service = match shared.inbound.get(&name).await {
        Ok(s) => s,
        Err(Lookup::Unknown) => return ctx.fail(ProxyError::UnknownService(name.to_string())),
        Err(Lookup::Unavailable) => {
            let service = ServiceName::new(&name);
            return ctx.fail(ProxyError::DiscoveryUnavailable { service });
        }
    };
    ctx.route = service.metrics.clone();
    // A request whose caller has given up is not delivered.
    let deadline = Deadline::effective(req.headers(), Duration::ZERO, ctx.start);
    if deadline.is_some_and(|d| d.expired(ctx.start)) {
        return ctx.fail(ProxyError::DeadlineExceeded);
    }
    // Not an open relay: the inbound side knows only endpoints on this node.
    let picked = {
        let endpoints = service.endpoints();
        match wanted {
            Some(wanted) => endpoints
                .list
                .iter()
                .find(|e| e.label == wanted)
                .cloned()
                .ok_or_else(|| ProxyError::NotLocal {
                    service: service.name.clone(),
                    endpoint: wanted.to_owned(),
                }),
            None => {
                let policy = shared.policies.load().get(service.name.as_str());
                match shared.balancer.pick(
                    &endpoints.list,
                    &[],
                    &policy.policy.balancer,
                    Instant::now(),
                ) {
                    Pick::Endpoint(e) => Ok(Arc::clone(e)),
                    _ => Err(ProxyError::NoEndpoints {
                        service: service.name.clone(),
                    }),
                }
            }
        }
    };
    let endpoint = match picked {
        Ok(e) => e,
        Err(e) => return ctx.fail(e),
    };
    let load = endpoint.start();
    ctx.endpoint = Some(Arc::clone(&endpoint));
    // Restore what the client spoke before the hop upgraded it.
    let orig = match req
        .headers()
        .get(WEFT_ORIG_PROTO)
        .map(HeaderValue::as_bytes)
    {
        Some(b"HTTP/1.0") => Version::HTTP_10,
        Some(b"HTTP/1.1") => Version::HTTP_11,
        _ => req.version(),
    };
    let upgrade = take_upgrade(&mut req);
    headers::strip_mesh_headers(req.headers_mut());
    headers::strip_hop_by_hop(req.headers_mut(), upgrade.is_some());
    if let Some(d) = deadline {
        d.to_instance(req.headers_mut(), ctx.start);
    }
    // Deliver in the protocol the instance speaks, no later than the deadline.
    let ep = &endpoint.endpoint;
    let req = req.map(RequestBody::streaming);
    let work = Box::pin(deliver(
        &shared,
        ep.addr,
        ep.protocol,
        req,
        &authority,
        orig,
        upgrade,
    ));
    let sent = match deadline {
        Some(d) => match shared.timers.bound(Some(d.at), work).await {
            Some(r) => r,
            None => Err(ProxyError::DeadlineExceeded.into()),
        },
        None => work.await,
    };
    match sent {
        Ok(rsp) => {
            let class = classify(rsp.status(), rsp.headers());
            endpoint.metrics.attempt(class);
            forwarded(&ctx, &endpoint, rsp, class, load, Instant::now())
        }
        Err(e) => {
            endpoint.metrics.attempt(Classification::Failure);
            ctx.fail(e.error)
        }
    }
}

/// Sends to an instance in its own protocol: pooled HTTP/1.1, a dedicated connection for an
/// upgrade, or the shared HTTP/2 connection.
fn deliver<'a>(
    shared: &'a Shared,
    addr: SocketAddr,
    protocol: Protocol,
    mut req: Request<RequestBody>,
    authority: &'a str,
    orig: Version,
    upgrade: Option<OnUpgrade>,
) -> Delivery<'a, impl Future<Output = Sent> + 'a, impl Future<Output = H2Sent> + 'a> {
    if let Some(downstream) = upgrade {
        let send = send_upgrade(&shared.h1, addr, req, downstream, authority, orig);
        return Delivery::Boxed {
            send: Box::pin(send),
        };
    }
    let prepared = match protocol {
        Protocol::Http1 => to_h1(&mut req, authority, orig),
        Protocol::Http2 => to_h2(&mut req, authority),
    };
    match (prepared, protocol) {
        (Err(e), _) => Delivery::Failed { error: Some(e) },
        (Ok(()), Protocol::Http1) => Delivery::H1 {
            send: shared.h1.send(addr, req),
        },
        (Ok(()), Protocol::Http2) => Delivery::H2 {
            send: shared.h2.send(addr, req),
        },
    }
}

/// A WebSocket (or other) upgrade crosses every hop as HTTP/1.1 on its own connection; once
/// both sides switch protocols, the two upgraded connections are spliced together.
async fn send_upgrade(
    h1: &H1Pool,
    addr: SocketAddr,
    mut req: Request<RequestBody>,
    downstream: OnUpgrade,
    authority: &str,
    orig: Version,
) -> Sent {
    to_h1(&mut req, authority, orig)?;
    let mut rsp = h1.send_upgrade(addr, req).await?;
    if rsp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream = hyper::upgrade::on(&mut rsp);
        tokio::spawn(async move {
            let (Ok(mut down), Ok(up)) = (downstream.get().await, upstream.await) else {
                tracing::debug!("upgrade did not complete on both sides");
                return;
            };
            let mut up = hyper_util::rt::TokioIo::new(up);
            if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
                tracing::debug!(error = %e, "upgraded connection ended");
            }
        });
    }
    // The 101 has no body; the upgraded connection carries on beside it.
    Ok(rsp.map(|_| ResponseBody::H1(UpstreamBody::empty())))
}

/// Records the client's view at the response headers (`answered`: when they arrived) and
/// hands the body on; the body records its end.
fn forwarded(
    ctx: &Ctx,
    endpoint: &Arc<EndpointState>,
    mut rsp: Response<ResponseBody>,
    class: Classification,
    load: LoadGuard,
    answered: Instant,
) -> Response<ProxyBody> {
    endpoint.metrics.request();
    endpoint.metrics.latency(answered - ctx.start);
    let status = rsp.status();
    headers::strip_hop_by_hop(rsp.headers_mut(), status == StatusCode::SWITCHING_PROTOCOLS);
    let completion = Completion {
        route: endpoint.metrics.clone(),
        status: status.as_u16(),
        class,
        error: "",
        load: Some(load),
    };
    rsp.map(|body| ProxyBody::upstream(body, completion))
}

/// HTTP/2 carries the authority in the URI (`:authority`), not in `Host`.
fn to_h2<B>(req: &mut Request<B>, authority: &str) -> Result<(), ProxyError> {
    // The path is kept as it is (a shared slice, not a copy); only the authority is new.
    let mut uri = std::mem::take(req.uri_mut()).into_parts();
    uri.scheme = Some(Scheme::HTTP);
    if uri.authority.as_ref().map(Authority::as_str) != Some(authority) {
        let parsed = Authority::try_from(authority)
            .map_err(|_| ProxyError::BadRequest("invalid authority"))?;
        uri.authority = Some(parsed);
    }
    if uri.path_and_query.is_none() {
        uri.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    *req.uri_mut() = Uri::from_parts(uri).map_err(|_| ProxyError::BadRequest("invalid URI"))?;
    *req.version_mut() = Version::HTTP_2;
    req.headers_mut().remove(HOST);
    Ok(())
}

/// HTTP/1.1 sends origin-form with `Host`; an absolute-form authority wins over `Host`.
fn to_h1<B>(req: &mut Request<B>, authority: &str, orig: Version) -> Result<(), ProxyError> {
    // An HTTP/1 client's origin-form request (the usual case) is already in shape: no copy
    // of its path, and its own `Host` when that names the same authority.
    if req.uri().authority().is_some() || req.uri().path_and_query().is_none() {
        let pq: Uri = headers::path_and_query(req.uri())
            .parse()
            .map_err(|_| ProxyError::BadRequest("invalid path"))?;
        *req.uri_mut() = pq;
    }
    *req.version_mut() = if orig == Version::HTTP_10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    if req.headers().get(HOST).map(HeaderValue::as_bytes) != Some(authority.as_bytes()) {
        let host = HeaderValue::from_str(authority)
            .map_err(|_| ProxyError::BadRequest("invalid authority"))?;
        req.headers_mut().insert(HOST, host);
    }
    Ok(())
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
