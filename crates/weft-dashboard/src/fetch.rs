//! A minimal HTTP GET over a fresh connection: the dashboard scrapes a handful of proxies
//! every few seconds, and `weft stat` asks the dashboard once.

use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL {0:?}")]
    Url(String),
    #[error("{url}: {cause}")]
    Io { url: String, cause: String },
    #[error("{url}: timed out after {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: the body is over {MAX_BODY_BYTES} bytes; not read further")]
    TooLarge { url: String },
}

/// The most read of any answer: a proxy's metrics with thousands of endpoints are a few
/// MiB; a peer sending more is not believed, and cannot make the dashboard hold it.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// `GET url`, expecting a 2xx; returns the body.
pub async fn get(url: &str, timeout: Duration) -> Result<Bytes, FetchError> {
    get_accepting(url, timeout, None).await
}

/// `GET url` asking for `accept` (a proxy's metrics as OpenMetrics, with exemplars).
pub async fn get_accepting(
    url: &str,
    timeout: Duration,
    accept: Option<&'static str>,
) -> Result<Bytes, FetchError> {
    match tokio::time::timeout(timeout, get_inner(url, accept)).await {
        Ok(r) => r,
        Err(_) => Err(FetchError::Timeout {
            url: url.to_string(),
            timeout,
        }),
    }
}

async fn get_inner(url: &str, accept: Option<&'static str>) -> Result<Bytes, FetchError> {
    let uri: Uri = url.parse().map_err(|_| FetchError::Url(url.to_string()))?;
    let authority = uri
        .authority()
        .ok_or_else(|| FetchError::Url(url.to_string()))?
        .clone();
    let io_err = |e: &dyn std::fmt::Display| FetchError::Io {
        url: url.to_string(),
        cause: e.to_string(),
    };
    let port = authority.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((authority.host(), port))
        .await
        .map_err(|e| io_err(&e))?;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| io_err(&e))?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = http::Request::get(path).header(http::header::HOST, authority.as_str());
    if let Some(accept) = accept {
        req = req.header(http::header::ACCEPT, accept);
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| io_err(&e))?;
    let rsp = tx.send_request(req).await.map_err(|e| io_err(&e))?;
    let status = rsp.status().as_u16();
    let body = Limited::new(rsp.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                FetchError::TooLarge {
                    url: url.to_string(),
                }
            } else {
                io_err(&e)
            }
        })?
        .to_bytes();
    if !(200..300).contains(&status) {
        return Err(FetchError::Status {
            url: url.to_string(),
            status,
        });
    }
    Ok(body)
}

/// Percent-encodes a query parameter value.
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
