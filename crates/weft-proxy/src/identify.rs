//! The first steps of every request, on either side: refuse a shape that could mean two
//! things to two parsers, find the authority, name the service and look it up; for a
//! tunnel, its target. A failure here before a service is known is counted under the
//! unknown service, since no known one can be blamed.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use http::Request;
use weft_core::headers::{dst_service, WEFT_DST_SERVICE};
use weft_core::{NameRules, ServiceName};
use weft_http::headers;

use crate::balancer::{Balance, EndpointState, Pick};
use crate::egress::discovery::tunnel_name;
use crate::egress::list::EgressList;
use crate::error::ProxyError;
use crate::resilience::policy::Compiled;
use crate::services::{Lookup, Service, Services};

/// Who a request is for.
pub(crate) struct Target<'r> {
    pub service: Arc<Service>,
    /// What the client addressed.
    pub authority: String,
    /// The endpoint a peer proxy chose (`weft-dst-service`'s `endpoint=`), inbound only.
    pub endpoint: Option<&'r str>,
}

/// An app's request: the service is the one the authority names (absolute-form URI,
/// `:authority`, or `Host`).
pub(crate) async fn outbound<B>(
    side: &Arc<Services>,
    names: &NameRules,
    egress: &EgressList,
    req: &Request<B>,
) -> Result<Target<'static>, ProxyError> {
    let authority = screen(req)?;
    let Some(name) = names.service_name(&authority) else {
        return Err(ProxyError::UnknownService(authority));
    };
    // A listed host outside the mesh takes plain HTTP on its listed port only.
    if let Some(host) = egress.host(&name) {
        // An `https://` URL sent as is would leave in the clear, unless the host is
        // reached in TLS anyway.
        if req.uri().scheme() == Some(&http::uri::Scheme::HTTPS) && !host.tls {
            return Err(ProxyError::BadRequest(
                "an https:// URL goes through a CONNECT tunnel, not as a request to the proxy",
            ));
        }
        let port = authority
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok());
        let allowed = host
            .http_port()
            .is_some_and(|listed| port.is_none_or(|p| p == listed));
        if !allowed {
            return Err(ProxyError::EgressDenied {
                target: authority,
                why: "plain HTTP to this port is not listed",
            });
        }
    }
    let service = match lookup(side, &name, &authority).await {
        Err(ProxyError::UnknownService(_)) if name.contains('.') => {
            return Err(ProxyError::EgressDenied {
                target: authority,
                why: "no such host in egress.hosts",
            })
        }
        found => found?,
    };
    Ok(Target {
        service,
        authority,
        endpoint: None,
    })
}

/// A peer proxy's request names the service and the endpoint it chose; a client outside
/// the mesh names only the service, by authority, and gets a local instance of it.
pub(crate) async fn inbound<'r, B>(
    side: &Arc<Services>,
    names: &NameRules,
    req: &'r Request<B>,
) -> Result<Target<'r>, ProxyError> {
    let authority = screen(req)?;
    let (named, endpoint) = match req.headers().get(WEFT_DST_SERVICE) {
        Some(v) => match v.to_str().ok().and_then(dst_service) {
            Some((service, endpoint)) => (Some(Cow::Borrowed(service)), endpoint),
            None => return Err(ProxyError::BadRequest("malformed weft-dst-service")),
        },
        None => (names.service_name(&authority), None),
    };
    let Some(name) = named else {
        return Err(ProxyError::UnknownService(authority));
    };
    let service = lookup(side, &name, &name).await?;
    Ok(Target {
        service,
        authority,
        endpoint,
    })
}

/// A `CONNECT`'s target, `host:port`, which must name a mesh service, or a host and port
/// `egress.hosts` lists: a tunnel reaches nothing else.
pub(crate) async fn tunnel<B>(
    side: &Arc<Services>,
    names: &NameRules,
    egress: &EgressList,
    req: &Request<B>,
) -> Result<Target<'static>, ProxyError> {
    let target = req
        .uri()
        .authority()
        .filter(|a| a.port_u16().is_some() && req.uri().path_and_query().is_none())
        .ok_or(ProxyError::BadRequest("malformed CONNECT target"))?;
    let authority = target.as_str().to_owned();
    let not_in_mesh = |authority: String| ProxyError::NotInMesh { target: authority };
    let Some(name) = names.service_name(&authority) else {
        return Err(not_in_mesh(authority));
    };
    let port = target.port_u16().unwrap_or(0);
    // A listed host outside the mesh: a tunnel to one of its listed ports, relayed there.
    if let Some(host) = egress.host(&name) {
        if !host.connect_ports.contains(&port) {
            return Err(ProxyError::EgressDenied {
                target: authority,
                why: "CONNECT to this port is not listed",
            });
        }
        let service = lookup(side, &tunnel_name(&name, port), &authority).await?;
        return Ok(Target {
            service,
            authority,
            endpoint: None,
        });
    }
    let service = match lookup(side, &name, &authority).await {
        Err(ProxyError::UnknownService(_)) if name.contains('.') => {
            return Err(ProxyError::EgressDenied {
                target: authority,
                why: "no such host in egress.hosts",
            })
        }
        Err(ProxyError::UnknownService(_)) => return Err(not_in_mesh(authority)),
        found => found?,
    };
    if !service.endpoints().has_port(port) {
        return Err(ProxyError::NoSuchPort {
            service: service.name.clone(),
            port,
        });
    }
    Ok(Target {
        service,
        authority,
        endpoint: None,
    })
}

/// A request inside a tunnel to `service`: screened as any, and sent to that service only.
/// The authority it goes with is its own, or the tunnel's (`tunnel`) when it names none.
pub(crate) fn in_tunnel<B>(
    names: &NameRules,
    service: &Service,
    tunnel: &str,
    req: &Request<B>,
) -> Result<String, ProxyError> {
    headers::check_framing(req).map_err(ProxyError::BadRequest)?;
    let Some(authority) = headers::authority(req) else {
        return Ok(tunnel.to_owned());
    };
    match names.service_name(authority) {
        Some(name) if name == service.name.as_str() => Ok(authority.to_owned()),
        _ => Err(ProxyError::Misdirected {
            service: service.name.clone(),
            authority: authority.to_owned(),
        }),
    }
}

/// Refuses ambiguous framing before anything else reads the request, and returns the
/// authority it is addressed to.
pub(crate) fn screen<B>(req: &Request<B>) -> Result<String, ProxyError> {
    headers::check_framing(req).map_err(ProxyError::BadRequest)?;
    headers::authority(req)
        .map(str::to_owned)
        .ok_or(ProxyError::MissingAuthority)
}

/// The service a staging override names instead of the request's own.
pub(crate) async fn overridden(
    side: &Arc<Services>,
    egress: &EgressList,
    name: &str,
) -> Result<Arc<Service>, ProxyError> {
    // Only mesh services: an override sends other apps' calls, with their credentials.
    if egress.host(name).is_some() {
        return Err(ProxyError::BadOverride(format!(
            "weft-ctx-override names {name:?}, a host outside the mesh"
        )));
    }
    match lookup(side, name, name).await {
        Err(ProxyError::UnknownService(_)) => Err(ProxyError::BadOverride(format!(
            "weft-ctx-override names {name:?}, which is not a service"
        ))),
        found => found,
    }
}

/// The service `name` from discovery; `asked` is what an unknown-service answer quotes.
async fn lookup(side: &Arc<Services>, name: &str, asked: &str) -> Result<Arc<Service>, ProxyError> {
    match side.get(name).await {
        Ok(service) => Ok(service),
        Err(Lookup::Unknown) => Err(ProxyError::UnknownService(asked.to_owned())),
        Err(Lookup::Unavailable) => Err(ProxyError::DiscoveryUnavailable {
            service: ServiceName::new(name),
        }),
    }
}

/// The endpoint on this node that a peer chose (`wanted`), or, for a client outside the
/// mesh, one the balancer picks among the service's local endpoints. The inbound knows only
/// this node's endpoints: it is not an open relay.
pub(crate) fn local(
    balancer: &dyn Balance,
    service: &Service,
    policy: &Compiled,
    wanted: Option<&str>,
) -> Result<Arc<EndpointState>, ProxyError> {
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
        None => match balancer.pick(
            &endpoints.list,
            &[],
            &policy.policy.balancer,
            Instant::now(),
        ) {
            Pick::Endpoint(e) => Ok(Arc::clone(e)),
            _ => Err(ProxyError::NoEndpoints {
                service: service.name.clone(),
            }),
        },
    }
}
