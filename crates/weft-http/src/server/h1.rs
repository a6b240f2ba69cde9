//! One client connection speaking HTTP/1.x: read a head, hand the request to the handler,
//! write its response, repeat while both sides keep the connection alive.
//!
//! Memory is what limits how many idle clients a proxy holds, so an idle connection keeps
//! no buffer (it waits for readability, then allocates) and the handler's future is boxed
//! only while a request is in flight.

use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response};
use http_body::Body;
use tokio::sync::{oneshot, watch};
use tokio::time::{Instant, Sleep};

use super::recv::ClientBody;
use super::recv::RecvBody;
use super::spare;
use super::upgrade::OnUpgrade;
use crate::error::BoxError;
use crate::h1::head::{self, Framing};
use crate::h1::request::{self, RequestHead};
use crate::h1::response;
use crate::h1::write;
use crate::socket::{ReadSide, Rewind, Socket, WriteSide};

/// First read buffer of a request; grows up to the head limit.
const HEAD_BUF: usize = 4096;
/// How long a closing connection waits for the client to finish sending, so the response
/// is not destroyed by a reset.
const LINGER: Duration = Duration::from_secs(1);

/// What protects a listener from its clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a client has to send a request head, from the connection's start or the end
    /// of its previous response.
    pub header_read_timeout: Duration,
    /// Largest request head accepted (HTTP/2: the header list).
    pub max_header_bytes: usize,
    /// How long a drain waits for in-flight requests before it gives up on them.
    pub shutdown_grace: Duration,
    /// Whether the listener goes on taking connections while it drains, until the ones it
    /// had are done: clients with nowhere else to go (the apps on a node) are served rather
    /// than refused for the whole grace period.
    pub accept_while_draining: bool,
    /// Connections open at once; one more is answered 503 (plaintext) and closed.
    pub max_connections: usize,
    /// An HTTP/2 connection with no stream open this long is closed. (An HTTP/1.1 one waits
    /// for its next request head only `header_read_timeout`.)
    pub idle_timeout: Duration,
    /// Nothing moving on a request this long ends it (a response left unread, a body no
    /// longer sent, a bodiless request left unanswered).
    pub stream_idle_timeout: Duration,
    /// Whether an HTTP/2 client that resets nearly every stream it opens, after it was
    /// taken, is cut off (rapid reset). Not for peer proxies: one connection carries every
    /// app of their node, and passes each app's cancellations on.
    pub police_resets: bool,
}

/// How the connection ended, when it is not simply closed.
pub enum Handoff {
    /// The client opened with the HTTP/2 preface: serve it as h2c.
    H2(Rewind),
}

/// Serves requests on `io` until either side ends the connection or `shutdown` turns true.
/// `buf` holds what was read off the connection before (empty for a new one).
pub async fn serve<H, F, B>(
    io: Socket,
    mut buf: BytesMut,
    peer: SocketAddr,
    limits: &Limits,
    shutdown: watch::Receiver<bool>,
    handler: &H,
) -> Option<Handoff>
where
    H: Fn(SocketAddr, Request<ClientBody>) -> F,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let (rd, mut wr) = io.split();
    wr.bound_stalls(limits.stream_idle_timeout);
    let mut rd = Some(rd);
    let wr = Arc::new(wr);
    let mut first = true;
    // One header-read timer for the connection, moved later for each request: pushing a
    // registered timer back is one atomic store, where a timer per request would be a
    // timer-wheel insertion and removal.
    let timer = tokio::time::sleep(limits.header_read_timeout);
    tokio::pin!(timer);
    // And one for a bodiless request left unanswered: made at the first, moved later for
    // each (a later deadline, the cheap move), never earlier.
    let mut unanswered: Option<Pin<Box<Sleep>>> = None;
    let idle_after_head = limits
        .stream_idle_timeout
        .saturating_sub(limits.header_read_timeout);
    // One wait for the drain for the connection's life: one made per request would join and
    // leave the watch's waiter list every time.
    let mut stop_rx = shutdown.clone();
    let stop = stop_rx.wait_for(|stop| *stop);
    tokio::pin!(stop);
    loop {
        let reader = rd.as_mut()?;
        if !first {
            timer
                .as_mut()
                .reset(Instant::now() + limits.header_read_timeout);
        }
        let head = match read_head(
            reader,
            &mut buf,
            limits,
            timer.as_mut(),
            stop.as_mut(),
            first,
        )
        .await
        {
            Read::Head(h) => h,
            Read::H2 => {
                let io = Socket::reunite(rd?, Arc::try_unwrap(wr).ok()?)?;
                return Some(Handoff::H2(Rewind::new(buf, io)));
            }
            Read::Refused(r) => {
                let answer = request::refusal(r);
                let _ = wr.write_all(&mut [IoSlice::new(&answer)]).await;
                close(rd, wr).await;
                return None;
            }
            Read::Closed => return None,
        };
        first = false;
        let RequestHead {
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
                let lend = (rd.take()?, std::mem::take(&mut buf));
                let owed = expect_continue.then(|| Arc::clone(&wr));
                RecvBody::new(lend, framing, owed, tx, limits.stream_idle_timeout)
            }
        };
        // An upgrade or a tunnel takes the connection over once the handler agrees.
        let mut switch = None;
        if upgrade || method == Method::CONNECT {
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
        let mut rsp = match rd.as_mut() {
            None => (&mut work).await,
            Some(reader) => {
                let mut watching = true;
                // No bytes either way while it waits: bounded by the stream idle timeout,
                // counted from this head's read (the header timer's start).
                let at = timer.deadline() + idle_after_head;
                let idle = match &mut unanswered {
                    Some(t) => {
                        t.as_mut().reset(at);
                        t
                    }
                    None => unanswered.insert(Box::pin(tokio::time::sleep_until(at))),
                };
                loop {
                    tokio::select! {
                        biased;
                        rsp = &mut work => break rsp,
                        read = reader.read_buf(&mut buf, HEAD_BUF), if watching => match read {
                            Ok(0) | Err(_) => return None,
                            Ok(_) => watching = buf.len() < limits.max_header_bytes,
                        },
                        () = idle.as_mut(), if switch.is_none() => {
                            let answer = request::idle_refusal(limits.stream_idle_timeout);
                            let _ = wr.write_all(&mut [IoSlice::new(&answer)]).await;
                            close(rd, wr).await;
                            return None;
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
        let switching = rsp.status() == http::StatusCode::SWITCHING_PROTOCOLS
            || head::opens_tunnel(&method, rsp.status());
        let mut out = Vec::with_capacity(256);
        let exact = rsp.body().size_hint().exact();
        let framing = response::encode(&rsp, exact, &method, version, &mut keep_alive, &mut out);
        if switching {
            if let Some(tx) = switch.take() {
                if wr.write_all(&mut [IoSlice::new(&out)]).await.is_err() {
                    return None;
                }
                drop(rsp);
                let io = Socket::reunite(rd?, Arc::try_unwrap(wr).ok()?)?;
                let _ = tx.send(Rewind::new(buf, io));
                return None;
            }
        }
        drop(switch);
        let body = rsp.body_mut();
        let clean = write::body(&wr, body, framing, out).await;
        drop(rsp);
        // The next request can be read only once this one's body has been read through.
        if let Some(mut rx) = lent {
            match rx.try_recv() {
                Ok((r, rest)) => {
                    rd = Some(r);
                    buf = rest;
                }
                Err(_) => keep_alive = false,
            }
        }
        if !clean || !keep_alive {
            close(rd, wr).await;
            return None;
        }
        if buf.is_empty() {
            // Idle clients hold no buffer; the next request to arrive on any takes it.
            spare::give(std::mem::take(&mut buf), HEAD_BUF);
        }
    }
}

// Moved once per request; boxing the head would cost an allocation instead.
#[allow(clippy::large_enum_variant)]
enum Read {
    Head(RequestHead),
    H2,
    Refused(request::Refusal),
    Closed,
}

async fn read_head<S: Future>(
    rd: &mut ReadSide,
    buf: &mut BytesMut,
    limits: &Limits,
    mut timer: Pin<&mut Sleep>,
    mut stop: Pin<&mut S>,
    first: bool,
) -> Read {
    loop {
        if !buf.is_empty() {
            if first && request::is_h2_preface_start(buf) {
                if buf.len() >= request::H2_PREFACE.len() {
                    return Read::H2;
                }
            } else {
                match request::parse(buf, limits.max_header_bytes) {
                    Ok(Some(h)) => return Read::Head(h),
                    Ok(None) => {}
                    Err(r) => return Read::Refused(r),
                }
            }
        }
        if buf.capacity() == 0 {
            // Idle: no buffer until the client sends something.
            // Biased: the socket is the likely one, and a random start costs a draw per poll.
            tokio::select! {
                biased;
                ready = rd.readable() => if ready.is_err() {
                    return Read::Closed;
                },
                _ = timer.as_mut() => return Read::Closed,
                _ = stop.as_mut() => return Read::Closed,
            }
            *buf = spare::take(HEAD_BUF);
        }
        tokio::select! {
            biased;
            read = rd.read_buf(buf, HEAD_BUF) => match read {
                Ok(0) | Err(_) => return Read::Closed,
                Ok(_) => {}
            },
            _ = timer.as_mut() => return Read::Closed,
            _ = stop.as_mut(), if buf.is_empty() => return Read::Closed,
        }
    }
}

/// Ends the connection: the write side first, then, when the client may still be sending,
/// what it sends is read and dropped for a moment so a reset does not destroy the answer.
async fn close(rd: Option<ReadSide>, wr: Arc<WriteSide>) {
    let Ok(mut wr) = Arc::try_unwrap(wr) else {
        return;
    };
    wr.shutdown().await;
    let Some(mut rd) = rd else {
        return;
    };
    let drain = async {
        let mut sink = BytesMut::with_capacity(4096);
        loop {
            sink.clear();
            match rd.read_buf(&mut sink, 4096).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
