//! Who may tap and how a subscription is answered: on the admin listener, anyone on
//! loopback (the node's operators; the admin listener refuses the rest); on the inbound,
//! the dashboard's mesh identity over mutual TLS, and it nothing else.

use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use weft_core::tap::{TapFilter, TAP_PATH};

use super::Taps;
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::respond;
use crate::shared::Shared;

/// A subscription for `query`: refused when the filter cannot match (its reason said),
/// otherwise the stream of its events.
pub(crate) fn subscription(taps: &std::sync::Arc<Taps>, query: &str) -> Response<ProxyBody> {
    let filter = match TapFilter::parse(query) {
        Ok(f) => f,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    if let Some(s) = &filter.service {
        if !taps.knows(s) {
            return text(
                StatusCode::NOT_FOUND,
                format!("unknown service {s:?}: discovery knows no such service\n"),
            );
        }
    }
    match taps.subscribe(filter) {
        Ok(stream) => {
            let mut rsp = Response::new(ProxyBody::tap(stream));
            let h = rsp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            rsp
        }
        Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

/// The dashboard's request at the inbound: `GET /tap` is all it may ask.
pub(crate) fn remote<B>(shared: &Shared, req: &Request<B>) -> Response<ProxyBody> {
    if req.method() == Method::GET && req.uri().path() == TAP_PATH {
        return subscription(&shared.taps, req.uri().query().unwrap_or(""));
    }
    let refused = ProxyError::PermissionDenied("the dashboard's identity may only tap");
    respond::failed(shared.inbound.unknown_metrics(), Instant::now(), &refused)
}

fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut rsp = Response::new(ProxyBody::full(body));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    rsp
}
