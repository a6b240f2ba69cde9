//! The request's way through the proxy, top to bottom. Each step is one line with its reason;
//! the work happens in the module it links to.
//!
//! Outbound (an app's request to a service):
//!   accept ([`crate::server`]) → screen framing ([`headers::check_framing`]) → name the
//!   service ([`weft_core::NameRules`]) → resolve ([`Services::get`]) → balance
//!   ([`Balance::pick`]) → forward over the peer's shared HTTP/2 hop, or straight to the
//!   endpoint ([`crate::client`]) → respond and record ([`forwarded`], [`crate::body`]).
//!
//! Inbound (a peer proxy's request for an instance on this node):
//!   accept → screen → name the service and endpoint the peer chose → refuse anything not on
//!   this node → deliver in the instance's protocol → respond and record.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderValue, HOST};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use weft_core::config::ProxyConfig;
use weft_core::headers::{WEFT_DST_ENDPOINT, WEFT_DST_SERVICE, WEFT_ORIG_PROTO};
use weft_core::{NameRules, Protocol, ProxyError, ServiceName};
use weft_metrics::{Classification, RouteMetrics};

use crate::balancer::{Balance, EndpointState, LoadGuard};
use crate::body::{classify, Completion, ProxyBody};
use crate::client::h1::{H1Pool, PoolReturn};
use crate::client::h2::H2Pool;
use crate::headers;
use crate::respond::error_response;
use crate::services::Services;

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
}

/// One request's state as it moves through the steps.
struct Ctx {
    start: Instant,
    /// Where errors are counted until an endpoint is picked.
    route: RouteMetrics,
    endpoint: Option<Arc<EndpointState>>,
}

impl Ctx {
    fn fail(&self, err: ProxyError) -> Response<ProxyBody> {
        tracing::debug!(error = %err, "request failed");
        let route = self.endpoint.as_ref().map_or(&self.route, |e| &e.metrics);
        route.latency(self.start.elapsed());
        route.response(err.status().as_u16(), Classification::Failure, err.kind());
        error_response(&err)
    }
}

pub async fn outbound(shared: Arc<Shared>, mut req: Request<Incoming>) -> Response<ProxyBody> {
    let mut ctx = Ctx {
        start: Instant::now(),
        route: shared.outbound.unknown_metrics().clone(),
        endpoint: None,
    };
    // Ambiguous framing is refused before anything else reads the request.
    if let Err(why) = headers::check_framing(&req) {
        ctx.route.request();
        return ctx.fail(ProxyError::BadRequest(why));
    }
    // The service is named by the authority: absolute-form URI, :authority, or Host.
    let Some(authority) = headers::authority(&req).map(str::to_owned) else {
        ctx.route.request();
        return ctx.fail(ProxyError::MissingAuthority);
    };
    let Some(service) = shared
        .names
        .service_name(&authority)
        .and_then(|name| shared.outbound.get(&name))
    else {
        ctx.route.request();
        return ctx.fail(ProxyError::UnknownService(authority));
    };
    ctx.route = service.metrics.clone();
    // Balance over the service's current endpoints.
    let picked = shared.balancer.pick(&service.endpoints().list).cloned();
    let Some(endpoint) = picked else {
        ctx.route.request();
        return ctx.fail(ProxyError::NoEndpoints {
            service: service.name.clone(),
        });
    };
    endpoint.metrics.request();
    let load = endpoint.start();
    ctx.endpoint = Some(Arc::clone(&endpoint));
    // Only the mesh may set routing headers; hop-by-hop headers die here.
    let upgrade = headers::is_upgrade(&req);
    headers::strip_mesh_headers(req.headers_mut());
    headers::strip_hop_by_hop(req.headers_mut(), upgrade);
    let orig = req.version();
    // Forward: through the peer proxy on the endpoint's node, or straight to the endpoint.
    let sent = match endpoint.endpoint.node_proxy {
        Some(peer) => {
            let h = req.headers_mut();
            h.insert(WEFT_DST_SERVICE, header_value(service.name.as_str()));
            h.insert(WEFT_DST_ENDPOINT, header_value(&endpoint.label));
            if upgrade {
                send_upgrade(&shared.h1, peer, req, &authority, orig).await
            } else {
                // The hop is HTTP/2 whatever the client spoke; the far side restores it.
                if orig != Version::HTTP_2 {
                    req.headers_mut()
                        .insert(WEFT_ORIG_PROTO, HeaderValue::from_static(proto_name(orig)));
                }
                match to_h2(&mut req, &authority) {
                    Ok(()) => shared.h2.send(peer, req).await.map(|r| (r, None)),
                    Err(e) => Err(e),
                }
            }
        }
        None => {
            let ep = &endpoint.endpoint;
            deliver(
                &shared,
                ep.addr,
                ep.protocol,
                req,
                &authority,
                orig,
                upgrade,
            )
            .await
        }
    };
    match sent {
        Ok((rsp, pool)) => forwarded(&ctx, &endpoint, rsp, load, pool),
        Err(e) => ctx.fail(e),
    }
}

pub async fn inbound(shared: Arc<Shared>, mut req: Request<Incoming>) -> Response<ProxyBody> {
    let mut ctx = Ctx {
        start: Instant::now(),
        route: shared.inbound.unknown_metrics().clone(),
        endpoint: None,
    };
    if let Err(why) = headers::check_framing(&req) {
        ctx.route.request();
        return ctx.fail(ProxyError::BadRequest(why));
    }
    let Some(authority) = headers::authority(&req).map(str::to_owned) else {
        ctx.route.request();
        return ctx.fail(ProxyError::MissingAuthority);
    };
    // The peer names the service and endpoint it chose; a client outside the mesh names
    // only the service, and gets a local instance of it.
    let named = match req.headers().get(WEFT_DST_SERVICE) {
        Some(v) => v.to_str().ok().map(ServiceName::new),
        None => shared.names.service_name(&authority),
    };
    let Some(service) = named.as_ref().and_then(|n| shared.inbound.get(n)) else {
        ctx.route.request();
        let name = named.map_or(authority.clone(), |n| n.to_string());
        return ctx.fail(ProxyError::UnknownService(name));
    };
    ctx.route = service.metrics.clone();
    // Not an open relay: the inbound side knows only endpoints on this node.
    let endpoints = service.endpoints();
    let picked = match req.headers().get(WEFT_DST_ENDPOINT) {
        Some(wanted) => match endpoints
            .list
            .iter()
            .find(|e| e.label.as_bytes() == wanted.as_bytes())
        {
            Some(e) => Ok(Arc::clone(e)),
            None => Err(ProxyError::NotLocal {
                service: service.name.clone(),
                endpoint: String::from_utf8_lossy(wanted.as_bytes()).into_owned(),
            }),
        },
        None => shared
            .balancer
            .pick(&endpoints.list)
            .cloned()
            .ok_or_else(|| ProxyError::NoEndpoints {
                service: service.name.clone(),
            }),
    };
    drop(endpoints);
    let endpoint = match picked {
        Ok(e) => e,
        Err(e) => {
            ctx.route.request();
            return ctx.fail(e);
        }
    };
    endpoint.metrics.request();
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
    let upgrade = headers::is_upgrade(&req);
    headers::strip_mesh_headers(req.headers_mut());
    headers::strip_hop_by_hop(req.headers_mut(), upgrade);
    // Deliver in the protocol the instance speaks.
    let ep = &endpoint.endpoint;
    let sent = deliver(
        &shared,
        ep.addr,
        ep.protocol,
        req,
        &authority,
        orig,
        upgrade,
    )
    .await;
    match sent {
        Ok((rsp, pool)) => forwarded(&ctx, &endpoint, rsp, load, pool),
        Err(e) => ctx.fail(e),
    }
}

/// Sends to an instance in its own protocol: pooled HTTP/1.1, a dedicated connection for an
/// upgrade, or the shared HTTP/2 connection.
async fn deliver(
    shared: &Shared,
    addr: SocketAddr,
    protocol: Protocol,
    mut req: Request<Incoming>,
    authority: &str,
    orig: Version,
    upgrade: bool,
) -> Result<(Response<Incoming>, Option<PoolReturn>), ProxyError> {
    if upgrade {
        return send_upgrade(&shared.h1, addr, req, authority, orig).await;
    }
    match protocol {
        Protocol::Http1 => {
            to_h1(&mut req, authority, orig)?;
            let (rsp, pool) = shared.h1.send(addr, req).await?;
            Ok((rsp, Some(pool)))
        }
        Protocol::Http2 => {
            to_h2(&mut req, authority)?;
            Ok((shared.h2.send(addr, req).await?, None))
        }
    }
}

/// A WebSocket (or other) upgrade crosses every hop as HTTP/1.1 on its own connection; once
/// both sides switch protocols, the two upgraded connections are spliced together.
async fn send_upgrade(
    h1: &H1Pool,
    addr: SocketAddr,
    mut req: Request<Incoming>,
    authority: &str,
    orig: Version,
) -> Result<(Response<Incoming>, Option<PoolReturn>), ProxyError> {
    let downstream = hyper::upgrade::on(&mut req);
    to_h1(&mut req, authority, orig)?;
    let mut rsp = h1.send_upgrade(addr, req).await?;
    if rsp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream = hyper::upgrade::on(&mut rsp);
        tokio::spawn(async move {
            let (Ok(down), Ok(up)) = (downstream.await, upstream.await) else {
                tracing::debug!("upgrade did not complete on both sides");
                return;
            };
            let mut down = hyper_util::rt::TokioIo::new(down);
            let mut up = hyper_util::rt::TokioIo::new(up);
            if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
                tracing::debug!(error = %e, "upgraded connection ended");
            }
        });
    }
    Ok((rsp, None))
}

/// Records the response's headers and hands its body on; the body records its end.
fn forwarded(
    ctx: &Ctx,
    endpoint: &Arc<EndpointState>,
    mut rsp: Response<Incoming>,
    load: LoadGuard,
    pool: Option<PoolReturn>,
) -> Response<ProxyBody> {
    endpoint.metrics.latency(ctx.start.elapsed());
    let status = rsp.status();
    let class = classify(status, rsp.headers());
    headers::strip_hop_by_hop(rsp.headers_mut(), status == StatusCode::SWITCHING_PROTOCOLS);
    let completion = Completion {
        route: endpoint.metrics.clone(),
        status: status.as_u16(),
        class,
        error: "",
        load: Some(load),
        pool,
    };
    rsp.map(|body| ProxyBody::upstream(body, completion))
}

/// HTTP/2 carries the authority in the URI (`:authority`), not in `Host`.
fn to_h2<B>(req: &mut Request<B>, authority: &str) -> Result<(), ProxyError> {
    let uri = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(headers::path_and_query(req.uri()))
        .build()
        .map_err(|_| ProxyError::BadRequest("invalid authority"))?;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_2;
    req.headers_mut().remove(HOST);
    Ok(())
}

/// HTTP/1.1 sends origin-form with `Host`; an absolute-form authority wins over `Host`.
fn to_h1<B>(req: &mut Request<B>, authority: &str, orig: Version) -> Result<(), ProxyError> {
    let pq: Uri = headers::path_and_query(req.uri())
        .parse()
        .map_err(|_| ProxyError::BadRequest("invalid path"))?;
    *req.uri_mut() = pq;
    *req.version_mut() = if orig == Version::HTTP_10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let host = HeaderValue::from_str(authority)
        .map_err(|_| ProxyError::BadRequest("invalid authority"))?;
    req.headers_mut().insert(HOST, host);
    Ok(())
}

fn proto_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}
