//! gRPC in the demo, without generated code: the world app answers `weft.demo.World/Greet`
//! (a unary call whose messages are plain text), and `weft greet` calls it as a gRPC app
//! with only `http_proxy` set does: a `CONNECT` tunnel to the service through the node's
//! proxy, then HTTP/2 inside it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The one method the demo serves.
pub const GREET: &str = "/weft.demo.World/Greet";
/// `grpc-status` of an answer that failed on purpose: UNAVAILABLE, which clients retry.
pub const UNAVAILABLE: u32 = 14;

/// Whether `req` is a gRPC call (by its content type).
pub fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// A unary answer: `message` framed, then the status in trailers.
pub fn answer(message: &str, status: u32) -> Response<BoxBody<Bytes, Infallible>> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(status));
    let frames = [
        Ok::<_, Infallible>(Frame::data(frame(message.as_bytes()))),
        Ok(Frame::trailers(trailers)),
    ];
    let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
    let mut rsp = Response::new(body);
    rsp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    rsp
}

/// A message as gRPC frames it: uncompressed, its length, then the bytes.
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

#[derive(Debug, thiserror::Error)]
pub enum GreetError {
    #[error("connect to proxy {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("the proxy refused the tunnel: {0}")]
    Refused(String),
    #[error("HTTP/2 through the tunnel: {0}")]
    Http(#[from] hyper::Error),
    #[error("the answer is not a gRPC message")]
    Malformed,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// What a Greet call came back with.
#[derive(Debug)]
pub struct Greeting {
    /// `grpc-status`: 0 is OK.
    pub status: u32,
    pub message: String,
}

/// Calls `Greet` on `target` (`service:port`) through the proxy at `proxy`, as a gRPC app
/// with `http_proxy` set does.
pub async fn greet(proxy: SocketAddr, target: &str) -> Result<Greeting, GreetError> {
    let limit = Duration::from_secs(10);
    tokio::time::timeout(limit, greet_inner(proxy, target))
        .await
        .map_err(|_| GreetError::Timeout(limit))?
}

async fn greet_inner(proxy: SocketAddr, target: &str) -> Result<Greeting, GreetError> {
    let mut stream = TcpStream::connect(proxy)
        .await
        .map_err(|e| GreetError::Connect(proxy, e))?;
    let connect = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream
        .write_all(connect.as_bytes())
        .await
        .map_err(|e| GreetError::Connect(proxy, e))?;
    // The proxy's answer to CONNECT is a head alone; HTTP/2 starts right after it.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = stream
            .read(&mut byte)
            .await
            .map_err(|e| GreetError::Connect(proxy, e))?;
        if n == 0 || head.len() > 16 * 1024 {
            return Err(GreetError::Refused(
                "the proxy closed the connection".into(),
            ));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        // The status line, and why in weft's words when the proxy said.
        let mut why = head.lines().next().unwrap_or("").to_string();
        if let Some(cause) = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("weft-error")
                .then(|| value.trim())
        }) {
            why = format!("{why} ({cause})");
        }
        return Err(GreetError::Refused(why));
    }
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::new(Full::new(frame(b"hello")));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = format!("http://{target}{GREET}")
        .parse()
        .map_err(|_| GreetError::Refused(format!("{target:?} is no authority")))?;
    let h = req.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(http::header::TE, HeaderValue::from_static("trailers"));
    let rsp = sender.send_request(req).await?;
    let http_status = rsp.status();
    let mut status = rsp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = rsp.into_body().collect().await?;
    if let Some(t) = body.trailers() {
        status = status.or_else(|| t.get("grpc-status")?.to_str().ok()?.parse().ok());
    }
    let mut data = body.to_bytes();
    let message = if data.len() >= 5 {
        data.advance(5);
        String::from_utf8_lossy(&data).into_owned()
    } else if http_status == StatusCode::OK && status.is_none() {
        return Err(GreetError::Malformed);
    } else {
        String::new()
    };
    Ok(Greeting {
        // An answer with no grpc-status at all (a proxy's own refusal) is UNAVAILABLE.
        status: status.unwrap_or(UNAVAILABLE),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_framed_as_grpc_frames_it() {
        assert_eq!(&frame(b"hi")[..], b"\x00\x00\x00\x00\x02hi");
        let req = Request::post(GREET)
            .header("content-type", "application/grpc+proto")
            .body(())
            .unwrap();
        assert!(is_grpc(&req));
        assert!(!is_grpc(&Request::get("/").body(()).unwrap()));
    }
}
