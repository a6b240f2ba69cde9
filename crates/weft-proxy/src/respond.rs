//! The one place that turns a [`ProxyError`] into a response: fitting status, a `weft-error`
//! header naming the cause, and a one-line body.

use http::header::{self, HeaderValue};
use http::Response;
use weft_core::headers::WEFT_ERROR;

use crate::body::ProxyBody;
use crate::error::{ProxyError, Side};

pub(crate) fn error_response(err: &ProxyError) -> Response<ProxyBody> {
    let mut rsp = Response::new(ProxyBody::full(err.body()));
    *rsp.status_mut() = err.status();
    let h = rsp.headers_mut();
    h.insert(WEFT_ERROR, HeaderValue::from_static(err.kind()));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if err.side() == Side::Downstream {
        // After a malformed request the connection's framing cannot be trusted.
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    rsp
}
