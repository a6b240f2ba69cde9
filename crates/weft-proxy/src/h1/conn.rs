//! One client connection speaking HTTP/1.x: read a head, hand the request to the handler,
//! write its response, repeat while both sides keep the connection alive.
//!
//! Memory is what limits how many idle clients a proxy holds, so an idle connection keeps
//! no buffer (it waits for readability, then allocates) and the handler's future is boxed
//! only while a request is in flight.

use std::future::{poll_fn, Future};
use std::io::{IoSlice, Write as _};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response};
use http_body::Body;
use tokio::io::AsyncWriteExt;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::body::RecvBody;
use super::head::{self, BodyFraming, Framing, Head};
use super::io::{Rewind, Socket};
use super::OnUpgrade;
use crate::body::{BoxError, ClientBody};

/// First read buffer of a request; grows up to the head limit.
const HEAD_BUF: usize = 4096;
/// Bodies frames up to this size are copied beside their head or chunk line: one write.
const COALESCE: usize = 16 * 1024;
/// How long a closing connection waits for the client to finish sending, so the response
/// is not destroyed by a reset.
const LINGER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
}

/// How the connection ended, when it is not simply closed.
pub enum Handoff {
    /// The client opened with the HTTP/2 preface: serve it as h2c.
    H2(Rewind),
}

/// Serves requests on `io` until either side ends the connection or `shutdown` turns true.
pub async fn serve<H, F>(
    io: Socket,
    peer: SocketAddr,
    limits: &Limits,
    mut shutdown: watch::Receiver<bool>,
    handler: &H,
) -> Option<Handoff>
where
    H: Fn(SocketAddr, Request<ClientBody>) -> F,
    F: Future<Output = Response<crate::body::ProxyBody>> + Send + 'static,
{
    let io = Arc::new(io);
    let mut buf = BytesMut::new();
    let mut first = true;
    loop {
        let head = match read_head(&io, &mut buf, limits, &mut shutdown, first).await {
            Read::Head(h) => h,
            Read::H2 => {
                let io = Arc::try_unwrap(io).ok()?;
                return Some(Handoff::H2(Rewind::new(buf, io)));
            }
            Read::Refused(r) => {
                let answer = head::refusal(r);
                let _ = io.write_all(&mut [IoSlice::new(&answer)]).await;
                close(io, true).await;
                return None;
            }
            Read::Closed => return None,
        };
        first = false;
        let Head {
            request,
            framing,
            mut keep_alive,
            close_after,
            expect_continue,
            upgrade,
        } = head;
        let method = request.method().clone();
        let version = request.version();
        let (mut parts, ()) = request.into_parts();

        // The body reads the socket itself; the buffer comes back when it has been read.
        let mut lent = None;
        let body = match framing {
            Framing::Length(0) => RecvBody::empty(),
            _ => {
                let (tx, rx) = oneshot::channel();
                lent = Some(rx);
                let rest = std::mem::take(&mut buf);
                RecvBody::new(Arc::clone(&io), rest, framing, expect_continue, tx)
            }
        };
        let mut switch = None;
        if upgrade {
            let (tx, rx) = oneshot::channel();
            parts.extensions.insert(OnUpgrade::new(rx));
            switch = Some(tx);
        }
        let mut work = Box::pin(handler(
            peer,
            Request::from_parts(parts, ClientBody::H1(body)),
        ));

        // While the handler works, a client that hangs up cancels it (when its body is not
        // being read by the handler, the socket is watched here).
        let mut rsp = if lent.is_some() {
            (&mut work).await
        } else {
            let mut watching = true;
            loop {
                tokio::select! {
                    rsp = &mut work => break rsp,
                    ready = io.readable(), if watching => {
                        if ready.is_err() {
                            return None;
                        }
                        if buf.capacity() - buf.len() < 1024 {
                            buf.reserve(HEAD_BUF);
                        }
                        match io.try_read_buf(&mut buf) {
                            Ok(0) => return None,
                            Ok(_) => watching = buf.len() < limits.max_header_bytes,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(_) => return None,
                        }
                    }
                }
            }
        };
        drop(work);

        let draining = *shutdown.borrow();
        if close_after || draining {
            keep_alive = false;
        }
        let switching = rsp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        let mut out = Vec::with_capacity(256);
        let exact = rsp.body().size_hint().exact();
        let framing =
            head::encode_response(&rsp, exact, &method, version, &mut keep_alive, &mut out);
        if switching {
            if let Some(tx) = switch.take() {
                if io.write_all(&mut [IoSlice::new(&out)]).await.is_err() {
                    return None;
                }
                drop(rsp);
                if let Ok(io) = Arc::try_unwrap(io) {
                    let _ = tx.send(Rewind::new(buf, io));
                }
                return None;
            }
        }
        drop(switch);
        let body = rsp.body_mut();
        let clean = write_body(&io, body, framing, out).await;
        drop(rsp);
        // The next request can be read only once this one's body has been read through.
        if let Some(mut rx) = lent {
            match rx.try_recv() {
                Ok(rest) => buf = rest,
                Err(_) => keep_alive = false,
            }
        }
        if !clean || !keep_alive {
            close(io, true).await;
            return None;
        }
        if buf.is_empty() {
            // Idle clients hold no buffer.
            buf = BytesMut::new();
        }
    }
}

// Moved once per request; boxing the head would cost an allocation instead.
#[allow(clippy::large_enum_variant)]
enum Read {
    Head(Head),
    H2,
    Refused(head::Refusal),
    Closed,
}

async fn read_head(
    io: &Socket,
    buf: &mut BytesMut,
    limits: &Limits,
    shutdown: &mut watch::Receiver<bool>,
    first: bool,
) -> Read {
    let timer = tokio::time::sleep_until(Instant::now() + limits.header_read_timeout);
    tokio::pin!(timer);
    loop {
        if !buf.is_empty() {
            if first && head::is_h2_preface_start(buf) {
                if buf.len() >= head::H2_PREFACE.len() {
                    return Read::H2;
                }
            } else {
                match head::parse(buf, limits.max_header_bytes) {
                    Ok(Some(h)) => return Read::Head(h),
                    Ok(None) => {}
                    Err(r) => return Read::Refused(r),
                }
            }
        }
        tokio::select! {
            ready = io.readable() => {
                if ready.is_err() {
                    return Read::Closed;
                }
            }
            _ = &mut timer => return Read::Closed,
            _ = shutdown.wait_for(|stop| *stop), if buf.is_empty() => return Read::Closed,
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(HEAD_BUF);
        }
        match io.try_read_buf(buf) {
            Ok(0) => return Read::Closed,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return Read::Closed,
        }
    }
}

/// Writes the head in `out` and the body after it, framed; false when the response could
/// not be written whole (the connection must close).
async fn write_body<B>(io: &Socket, body: &mut B, framing: BodyFraming, mut out: Vec<u8>) -> bool
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let mut left = match framing {
        BodyFraming::None | BodyFraming::Length(0) => {
            if body.is_end_stream() {
                // Lets a finished upstream body record itself and release its connection.
                let _ = poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await;
            }
            return io.write_all(&mut [IoSlice::new(&out)]).await.is_ok();
        }
        BodyFraming::Length(n) => Some(n),
        BodyFraming::Chunked | BodyFraming::Close => None,
    };
    // A sized body is almost always right behind its head: wait for it and write both at
    // once. A streamed one goes out as it is produced, so its head goes now if no data is.
    let mut next = if left.is_some() {
        Some(poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await)
    } else {
        match poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await {
            Poll::Ready(frame) => Some(frame),
            Poll::Pending => None,
        }
    };
    loop {
        let frame = match next.take() {
            Some(frame) => frame,
            None => {
                if !out.is_empty() {
                    if io.write_all(&mut [IoSlice::new(&out)]).await.is_err() {
                        return false;
                    }
                    out.clear();
                }
                poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
            }
        };
        let (mut data, trailers, mut end) = match frame {
            None => (Bytes::new(), None, true),
            Some(Err(_)) => {
                // The upstream failed midway: the client must not take this for a whole body.
                let _ = io.write_all(&mut [IoSlice::new(&out)]).await;
                return false;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => (data, None, body.is_end_stream()),
                Err(frame) => (Bytes::new(), frame.into_trailers().ok(), true),
            },
        };
        if let Some(n) = left.as_mut() {
            data.truncate(usize::try_from(*n).unwrap_or(usize::MAX));
            *n -= data.len() as u64;
            if *n == 0 && !end {
                let _ = poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await;
                end = true;
            }
        }
        let mut tail: Vec<u8> = Vec::new();
        if framing == BodyFraming::Chunked {
            if !data.is_empty() {
                let _ = write!(out, "{:x}\r\n", data.len());
                tail.extend_from_slice(b"\r\n");
            }
            if end {
                tail.extend_from_slice(b"0\r\n");
                if let Some(t) = &trailers {
                    encode_trailers(t, &mut tail);
                }
                tail.extend_from_slice(b"\r\n");
            }
        }
        let written = if data.len() <= COALESCE {
            out.extend_from_slice(&data);
            out.extend_from_slice(&tail);
            io.write_all(&mut [IoSlice::new(&out)]).await
        } else {
            let mut parts = [IoSlice::new(&out), IoSlice::new(&data), IoSlice::new(&tail)];
            io.write_all(&mut parts).await
        };
        if written.is_err() {
            return false;
        }
        out.clear();
        if end {
            // A sized body that ended short leaves the client waiting: close it.
            return left.is_none_or(|n| n == 0) && framing != BodyFraming::Close;
        }
    }
}

fn encode_trailers(trailers: &HeaderMap, out: &mut Vec<u8>) {
    for (name, value) in trailers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Ends the connection: the write side first, then, when the client may still be sending,
/// what it sends is read and dropped for a moment so a reset does not destroy the answer.
async fn close(io: Arc<Socket>, linger: bool) {
    let Ok(mut io) = Arc::try_unwrap(io) else {
        return;
    };
    let _ = io.shutdown().await;
    if linger {
        let drain = async {
            let mut sink = BytesMut::with_capacity(4096);
            loop {
                if io.readable().await.is_err() {
                    return;
                }
                sink.clear();
                match io.try_read_buf(&mut sink) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}
