//! A tunnel through a peer proxy: `CONNECT` on a connection of its own, never pooled. Once
//! the peer answers `2xx`, the connection carries the tunnel's bytes both ways.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{HeaderMap, HOST};
use http::{HeaderValue, Method, Request};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;

use weft_core::headers::WEFT_ERROR;

use super::connect::Connector;
use crate::error::Error;

/// The tunnel's bytes, both ways.
pub type Tunnel = TokioIo<Upgraded>;

/// Asks the proxy at `endpoint` (on node `name`, when known) to open a tunnel to `target` (`host:port`), with `headers`
/// beside the request (what the peer needs to know of it).
pub async fn open(
    connector: &Connector,
    endpoint: SocketAddr,
    name: Option<&str>,
    target: &str,
    headers: HeaderMap,
) -> Result<Tunnel, Error> {
    let mut sender = super::upgrade::connection(connector, endpoint, name, "tunnel").await?;
    let mut req = Request::new(Empty::<Bytes>::new());
    *req.method_mut() = Method::CONNECT;
    *req.uri_mut() = target
        .parse()
        .map_err(|_| Error::reset(endpoint, "bad tunnel target"))?;
    *req.headers_mut() = headers;
    let host =
        HeaderValue::from_str(target).map_err(|_| Error::reset(endpoint, "bad tunnel target"))?;
    req.headers_mut().insert(HOST, host);
    let rsp = sender
        .send_request(req)
        .await
        .map_err(|e| Error::from_hyper(endpoint, &e))?;
    if !rsp.status().is_success() {
        let why = rsp
            .headers()
            .get(WEFT_ERROR)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let cause = format!("tunnel refused: {} {why}", rsp.status().as_u16());
        return Err(Error::reset(endpoint, cause.trim_end()));
    }
    let upgraded = hyper::upgrade::on(rsp)
        .await
        .map_err(|e| Error::from_hyper(endpoint, &e))?;
    Ok(TokioIo::new(upgraded))
}
