//! Clients for tests: `curl` as users run it, and hyper's HTTP/1.1 and HTTP/2 clients.

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub struct Reply {
    pub status: u16,
    /// Every header block as received (curl only), `100 Continue` included.
    pub raw_head: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 GET on a fresh connection.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Result<Reply, Error> {
    let req = Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    send_h1(addr, req).await
}

pub async fn send_h1(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<Reply, Error> {
    let io = TokioIo::new(TcpStream::connect(addr).await?);
    let (mut tx, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let rsp = tx.send_request(req).await?;
    Ok(collect(rsp).await?)
}

pub async fn collect(rsp: http::Response<hyper::body::Incoming>) -> Result<Reply, hyper::Error> {
    let (parts, body) = rsp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status.as_u16(),
        raw_head: String::new(),
        headers: parts.headers,
        body,
    })
}

/// An HTTP/2 (prior knowledge) connection for many concurrent requests.
pub async fn h2_connect<B>(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = TokioIo::new(TcpStream::connect(addr).await.expect("connect"));
    let (tx, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    tx
}

/// Runs `curl` with `args`, returning the final response's status, headers and body.
pub async fn curl(args: &[&str]) -> Reply {
    let dir = crate::TempDir::new("curl");
    let headers_file = dir.path("headers");
    let body_file = dir.path("body");
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D"])
        .arg(&headers_file)
        .arg("-o")
        .arg(&body_file)
        .args(args)
        .output()
        .await
        .expect("run curl");
    let head = std::fs::read_to_string(&headers_file).unwrap_or_default();
    let body = std::fs::read(&body_file).unwrap_or_default();
    assert!(
        !head.is_empty(),
        "curl {args:?} got no response: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_head(&head, body.into())
}

/// Parses the last header block of `curl -D` output (after any `100 Continue`).
fn parse_head(head: &str, body: Bytes) -> Reply {
    let block = head
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .last()
        .unwrap_or("");
    let mut lines = block.lines();
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers = HeaderMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.trim().as_bytes()),
                http::HeaderValue::from_str(v.trim()),
            ) {
                headers.append(k, v);
            }
        }
    }
    Reply {
        status,
        raw_head: head.to_string(),
        headers,
        body,
    }
}

/// Whether a command-line tool is on PATH (the test command installs them).
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| Path::new(&d).join(tool).exists()))
        .unwrap_or(false)
}
