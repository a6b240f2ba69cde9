//! A small HTTP/1.1 client that sends absolute-form requests to a proxy and keeps idle
//! connections, as an app configured with `http_proxy` does.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect to proxy {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("request through {0}: {1}")]
    Http(SocketAddr, hyper::Error),
    #[error("request through {0} timed out")]
    Timeout(SocketAddr),
}

pub struct ProxyClient {
    proxy: SocketAddr,
    idle: Mutex<Vec<SendRequest<Empty<Bytes>>>>,
    timeout: Duration,
}

impl ProxyClient {
    pub fn new(proxy: SocketAddr) -> Self {
        Self {
            proxy,
            idle: Mutex::new(Vec::new()),
            timeout: Duration::from_secs(10),
        }
    }

    pub fn proxy(&self) -> SocketAddr {
        self.proxy
    }

    /// `GET url` through the proxy, with `headers`; returns status, headers and body.
    pub async fn get(
        &self,
        url: &str,
        headers: HeaderMap,
    ) -> Result<(Response<()>, Bytes), ClientError> {
        tokio::time::timeout(self.timeout, self.get_inner(url, headers))
            .await
            .map_err(|_| ClientError::Timeout(self.proxy))?
    }

    async fn get_inner(
        &self,
        url: &str,
        headers: HeaderMap,
    ) -> Result<(Response<()>, Bytes), ClientError> {
        let mut req = Request::get(url)
            .body(Empty::new())
            .expect("a URL the caller built");
        *req.headers_mut() = headers;
        if let Some(host) = req.uri().authority().map(|a| a.as_str().to_owned()) {
            if let Ok(v) = host.parse() {
                req.headers_mut().insert(http::header::HOST, v);
            }
        }
        let mut sender = self.checkout().await?;
        let rsp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(self.proxy, e))?;
        let (parts, body) = rsp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| ClientError::Http(self.proxy, e))?
            .to_bytes();
        if !sender.is_closed() {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < 64 {
                idle.push(sender);
            }
        }
        Ok((Response::from_parts(parts, ()), body))
    }

    async fn checkout(&self) -> Result<SendRequest<Empty<Bytes>>, ClientError> {
        loop {
            let next = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(mut s) = next else { break };
            if !s.is_closed() && s.ready().await.is_ok() {
                return Ok(s);
            }
        }
        let stream = TcpStream::connect(self.proxy)
            .await
            .map_err(|e| ClientError::Connect(self.proxy, e))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Http(self.proxy, e))?;
        tokio::spawn(conn);
        Ok(sender)
    }
}
