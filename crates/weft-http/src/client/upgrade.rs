//! Upgrades (WebSocket and the like): the request crosses as HTTP/1.1 on a connection of its
//! own, never pooled, and once the instance switches protocols the two upgraded connections,
//! the client's and the instance's, are spliced together.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use super::connect::{Connector, Speaks};
use super::h1::UpstreamBody;
use crate::error::{BoxError, Error};
use crate::server::OnUpgrade;

/// Sends `req` (already in HTTP/1.1 form) to `endpoint` (a peer proxy on node `name`, when
/// known); if the answer is `101`, the client's connection (`downstream`) and the
/// instance's are spliced in a task of their own. The answer is handed back without a body:
/// a `101` has none.
pub async fn send<B>(
    connector: &Connector,
    endpoint: SocketAddr,
    name: Option<&str>,
    req: Request<B>,
    downstream: OnUpgrade,
) -> Result<Response<UpstreamBody>, Error>
where
    B: Body<Data = Bytes, Error = BoxError> + Send + 'static,
{
    let mut sender = connection(connector, endpoint, name, "upgrade").await?;
    let mut rsp = sender
        .send_request(req)
        .await
        .map_err(|e| Error::from_hyper(endpoint, &e))?;
    if rsp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream = hyper::upgrade::on(&mut rsp);
        tokio::spawn(async move {
            let (Ok(mut down), Ok(up)) = (downstream.get().await, upstream.await) else {
                tracing::debug!("upgrade did not complete on both sides");
                return;
            };
            let mut up = TokioIo::new(up);
            if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
                tracing::debug!(error = %e, "upgraded connection ended");
            }
        });
    }
    Ok(rsp.map(|_| UpstreamBody::empty()))
}

/// A connection of its own to `endpoint` (on node `name`, when known) for an exchange that
/// may take it over — an upgrade, a tunnel: hyper's HTTP/1.1 client with upgrades on, its
/// connection driven by a task that logs how the `what` ended.
pub(super) async fn connection<B>(
    connector: &Connector,
    endpoint: SocketAddr,
    name: Option<&str>,
    what: &'static str,
) -> Result<http1::SendRequest<B>, Error>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let io = TokioIo::new(connector.open(endpoint, Speaks::Http1, name).await?);
    let (sender, conn) = http1::handshake(io)
        .await
        .map_err(|e| Error::from_hyper(endpoint, &e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(%endpoint, error = %e, "{what} connection ended");
        }
    });
    Ok(sender)
}
