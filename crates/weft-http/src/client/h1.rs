//! A lean HTTP/1.1 client and pool: idle connections per endpoint, newest first, reaped when
//! idle too long. A request is written and its response read by the task that forwards it —
//! no connection task, no channel — and the response body reads the instance's socket
//! directly; a connection returns to the pool when that body has been read to its end.

use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};

use super::connect::Connector;
use super::reap::spawn_reaper;
use crate::body::EitherBody;
use crate::error::{BoxError, Error, SendError};
use crate::h1::decode::{self, Decoder};
use crate::h1::write;
use crate::h1::{request, response};
use crate::h2::body::H2Body;
use crate::socket::{self, ReadSide, WriteSide};
use crate::FastMap;

/// First read buffer for a response; grows as the response needs.
const READ_SIZE: usize = 8 * 1024;

pub struct H1Pool {
    connector: Connector,
    idle_timeout: Duration,
    max_idle: usize,
    idle: Mutex<FastMap<SocketAddr, Vec<Idle>>>,
}

struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

/// One connection to an instance, owned by whoever is using it. Boxed wherever it goes: the
/// response body holds it, and a response is moved through every layer of the proxy.
struct Conn {
    rd: ReadSide,
    wr: WriteSide,
    buf: BytesMut,
}

/// A read error that means the peer had closed the connection (a TLS peer without its
/// close_notify, or a reset) rather than that the exchange broke midway.
fn closed_under_us(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
    )
}

/// Why an exchange failed, and whether the request can still go elsewhere.
enum Failed<B> {
    /// The connection was found closed before anything was read back, and the request can
    /// be sent again as it is (its body was never polled).
    Stale(B),
    Broken(String),
}

impl H1Pool {
    pub fn new(connector: Connector, idle_timeout: Duration, max_idle: usize) -> Arc<Self> {
        let pool = Arc::new(Self {
            connector,
            idle_timeout,
            max_idle,
            idle: Mutex::new(FastMap::default()),
        });
        spawn_reaper(&pool, idle_timeout, Self::reap);
        pool
    }

    /// How the pool connects; an upgrade's own connection is made the same way.
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// Sends a request on a pooled connection (or a new one). A request that found its pooled
    /// connection closed under it is sent once more on a fresh connection.
    pub fn send<B>(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        req: Request<B>,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, SendError<B>>> + '_
    where
        B: Body<Data = Bytes, Error = BoxError> + Unpin + Send + 'static,
    {
        // Split before the future is made: an async fn keeps room for its arguments all its
        // life, so the request would be held twice, and copied with the future each time.
        let (parts, body) = req.into_parts();
        async move {
            let (conn, pooled) = match self.checkout(endpoint) {
                Some(c) => (c, true),
                None => match Box::pin(self.connect(endpoint)).await {
                    Ok(c) => (c, false),
                    Err(error) => {
                        return Err(SendError {
                            error,
                            request: Some(Box::new(Request::from_parts(parts, body))),
                        })
                    }
                },
            };
            let body = match self.exchange(endpoint, conn, &parts, body).await {
                Ok(rsp) => return Ok(rsp),
                Err(Failed::Stale(body)) if pooled => body,
                Err(Failed::Stale(_)) => {
                    return Err(Error::reset(endpoint, "connection closed").into())
                }
                Err(Failed::Broken(cause)) => return Err(Error::reset(endpoint, cause).into()),
            };
            let conn = match Box::pin(self.connect(endpoint)).await {
                Ok(c) => c,
                Err(error) => {
                    return Err(SendError {
                        error,
                        request: Some(Box::new(Request::from_parts(parts, body))),
                    })
                }
            };
            match self.exchange(endpoint, conn, &parts, body).await {
                Ok(rsp) => Ok(rsp),
                Err(Failed::Stale(_)) => Err(Error::reset(endpoint, "connection closed").into()),
                Err(Failed::Broken(cause)) => Err(Error::reset(endpoint, cause).into()),
            }
        }
    }

    /// Writes the request, then reads the response head. If the instance answers before the
    /// request body is all sent, sending stops and the connection is not reused.
    async fn exchange<B>(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        mut conn: Box<Conn>,
        parts: &http::request::Parts,
        mut body: B,
    ) -> Result<Response<UpstreamBody>, Failed<B>>
    where
        B: Body<Data = Bytes, Error = BoxError> + Unpin,
    {
        let mut out = Vec::with_capacity(512);
        let empty = body.is_end_stream();
        let framing = request::encode(parts, empty, body.size_hint().exact(), &mut out);
        let mut reusable = true;
        if empty {
            if conn.wr.write_all(&mut [IoSlice::new(&out)]).await.is_err() {
                return Err(Failed::Stale(body));
            }
        } else {
            let sent = {
                // Boxed: most requests have no body, and this state would enlarge every
                // request's future (which each layer above copies) by a kilobyte.
                let sending = Box::pin(write::body(&conn.wr, &mut body, framing, out));
                let answered = conn.rd.readable();
                tokio::select! {
                    sent = sending => Some(sent),
                    _ = answered => None,
                }
            };
            match sent {
                Some(true) => {}
                Some(false) => return Err(Failed::Broken("request body failed".into())),
                // An early answer (say, 413): take it; the rest of the body stays unsent.
                None => reusable = false,
            }
        }
        // An empty body goes back with a stale connection, to be sent again as it is.
        let mut unsent = empty.then_some(body);
        let head = loop {
            match response::parse(&mut conn.buf, &parts.method) {
                Ok(Some(h)) if h.response.status().is_informational() => continue,
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(why) => return Err(Failed::Broken(why.into())),
            }
            match conn.rd.read_buf(&mut conn.buf, READ_SIZE).await {
                Ok(0) => {
                    return Err(match unsent.take() {
                        Some(body) if conn.buf.is_empty() => Failed::Stale(body),
                        _ => Failed::Broken("connection closed before the response".into()),
                    })
                }
                Ok(_) => {}
                // A TLS connection the server closed while it idled shows only now (its
                // socket's readiness is behind rustls): nothing came back, so it was stale.
                Err(e) if closed_under_us(&e) && conn.buf.is_empty() && unsent.is_some() => {
                    return Err(Failed::Stale(unsent.take().expect("checked")))
                }
                Err(e) => return Err(Failed::Broken(e.to_string())),
            }
        };
        let (response, ()) = head.response.into_parts();
        let mut body = UpstreamBody {
            conn: Some(conn),
            decoder: Decoder::new(head.framing),
            pool: Arc::downgrade(self),
            endpoint,
            reusable: reusable && head.keep_alive,
        };
        if body.decoder.is_done() {
            body.release();
        }
        Ok(Response::from_parts(response, body))
    }

    /// The newest idle connection that has heard nothing since it was put back (a pooled
    /// connection that has, was closed by the instance or is out of step).
    fn checkout(&self, endpoint: SocketAddr) -> Option<Box<Conn>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&endpoint)?;
        while let Some(entry) = list.pop() {
            if !entry.conn.rd.has_news() {
                return Some(entry.conn);
            }
        }
        idle.remove(&endpoint);
        None
    }

    async fn connect(&self, endpoint: SocketAddr) -> Result<Box<Conn>, Error> {
        let stream = self.connector.connect(endpoint).await?;
        let (rd, wr) = match &self.connector.origin {
            None => socket::halves(stream),
            Some(origin) => {
                socket::tls_halves(self.connector.origin_tls(origin, endpoint, stream).await?)
            }
        };
        Ok(Box::new(Conn {
            rd,
            wr,
            buf: BytesMut::new(),
        }))
    }

    fn put(&self, endpoint: SocketAddr, conn: Box<Conn>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(endpoint).or_default();
        if list.len() < self.max_idle {
            list.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    fn reap(&self) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|_, list| {
            list.retain(|i| !i.conn.rd.has_news() && now - i.since < self.idle_timeout);
            !list.is_empty()
        });
    }
}

/// A response body as an upstream sends it: over HTTP/1 (read off a pooled connection), or
/// on an HTTP/2 stream.
pub type ResponseBody = EitherBody<UpstreamBody, H2Body>;

/// A response body read straight off an instance's connection; the connection goes back to
/// the pool when the body has been read to its end.
pub struct UpstreamBody {
    conn: Option<Box<Conn>>,
    decoder: Decoder,
    pool: Weak<H1Pool>,
    endpoint: SocketAddr,
    reusable: bool,
}

impl UpstreamBody {
    /// No body, and no connection behind it (an upgrade's `101`).
    pub fn empty() -> Self {
        Self {
            conn: None,
            decoder: Decoder::Done,
            pool: Weak::new(),
            endpoint: SocketAddr::from(([0, 0, 0, 0], 0)),
            reusable: false,
        }
    }

    /// The body has been read to its end: its connection goes back to the pool, unless
    /// something about the exchange said it must not.
    fn release(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.reusable && conn.buf.is_empty() {
            if let Some(pool) = self.pool.upgrade() {
                pool.put(self.endpoint, conn);
            }
        }
    }

    fn fail(&mut self, why: &'static str) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.decoder = Decoder::Done;
        self.conn = None;
        Poll::Ready(Some(Err(std::io::Error::other(why).into())))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(Conn { rd, buf, .. }) = this.conn.as_deref_mut() else {
            return Poll::Ready(None);
        };
        let fill = |buf: &mut BytesMut, cx: &mut Context<'_>| rd.poll_read_buf(cx, buf, READ_SIZE);
        match ready!(decode::poll_frame(&mut this.decoder, buf, cx, fill)) {
            Ok(frame) => {
                if this.decoder.is_done() {
                    this.release();
                }
                Poll::Ready(frame.map(Ok))
            }
            Err(why) => this.fail(why),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.decoder.size_hint()
    }
}
