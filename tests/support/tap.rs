//! A tap subscriber, as `weft tap` is one: `GET /tap?FILTER` on a proxy's admin listener (or
//! `/api/tap` on the dashboard), its newline-delimited JSON read line by line as it comes.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub struct Tap {
    lines: mpsc::UnboundedReceiver<Value>,
    /// Reads the stream; dropping the `Tap` stops it, closing the connection.
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Subscribes at `addr` (`path` with its query); a refusal is its status and message.
pub async fn subscribe(addr: SocketAddr, path: &str) -> Result<Tap, (u16, String)> {
    let stream = TcpStream::connect(addr).await.expect("connect to tap");
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "admin")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let rsp = tx.send_request(req).await.expect("tap answer");
    let status = rsp.status().as_u16();
    let mut body = rsp.into_body();
    if status != 200 {
        let b = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        return Err((status, String::from_utf8_lossy(&b).into_owned()));
    }
    let (lines_tx, lines) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        // The connection is kept with the reader: dropping `Tap` ends the subscription.
        let _tx = tx;
        let mut buf = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            while let Some(i) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                // An empty line is the stream's heartbeat.
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let v: Value = serde_json::from_slice(&line[..i])
                    .unwrap_or_else(|e| panic!("a tap line that is not JSON ({e}): {line:?}"));
                if lines_tx.send(v).is_err() {
                    return;
                }
            }
        }
    });
    Ok(Tap { lines, reader })
}

impl Tap {
    /// The next line, if one comes within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        tokio::time::timeout(wait, self.lines.recv())
            .await
            .ok()
            .flatten()
    }

    /// Every line until `quiet` passes with none (or the stream ends).
    pub async fn until_quiet(&mut self, quiet: Duration) -> Vec<Value> {
        let mut v = Vec::new();
        while let Some(line) = self.next(quiet).await {
            v.push(line);
        }
        v
    }
}
