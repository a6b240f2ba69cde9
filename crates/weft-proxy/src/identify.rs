//! The first steps of every request, on either side: refuse a shape that could mean two
//! things to two parsers, find the authority, name the service and look it up. Every
//! failure here is counted under the unknown service, since no known one can be blamed.

use std::borrow::Cow;
use std::sync::Arc;

use http::Request;
use weft_core::headers::WEFT_DST_SERVICE;
use weft_core::{NameRules, ServiceName};
use weft_http::headers;

use crate::error::ProxyError;
use crate::mesh;
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
    req: &Request<B>,
) -> Result<Target<'static>, ProxyError> {
    let authority = screen(req)?;
    let Some(name) = names.service_name(&authority) else {
        return Err(ProxyError::UnknownService(authority));
    };
    let service = lookup(side, &name, &authority).await?;
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
        Some(v) => match v.to_str().ok().and_then(mesh::dst_service) {
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

/// Refuses ambiguous framing before anything else reads the request, and returns the
/// authority it is addressed to.
fn screen<B>(req: &Request<B>) -> Result<String, ProxyError> {
    headers::check_framing(req).map_err(ProxyError::BadRequest)?;
    headers::authority(req)
        .map(str::to_owned)
        .ok_or(ProxyError::MissingAuthority)
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
