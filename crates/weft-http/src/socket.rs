//! A client's socket as a listener holds it — plain TCP, or mutual TLS from a peer proxy:
//! every byte and the connection's life reported to the listener's [`ConnStats`]; and the
//! same socket with bytes already read put back in front, for the HTTP/2 server and for
//! upgraded (WebSocket) connections.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// What a listener counts of its client connections. The transport reports; whoever keeps
/// the metrics implements it.
pub trait ConnStats: Send + Sync + 'static {
    /// A connection was accepted and is open.
    fn opened(&self);
    /// An accepted connection closed.
    fn closed(&self);
    fn read(&self, bytes: usize);
    fn written(&self, bytes: usize);
    /// An accepted connection completed its mutual TLS handshake.
    fn tls_accepted(&self) {}
    /// A connection was turned away before it was served: `plaintext` where only TLS is
    /// taken, `no_certificate`, or `handshake` (a failed one; a certificate found wanting
    /// is the verifier's to count).
    fn tls_refused(&self, _reason: &'static str) {}
    /// A client's HTTP/2 connection was closed for abuse: `rapid_reset` (streams reset
    /// before their answer, most of those it opened); `calm`, `flow_control`, `protocol`
    /// (h2 found the client breaking the protocol).
    fn h2_abuse(&self, _reason: &'static str) {}
    /// A connection was turned away: the listener had its most open.
    fn overloaded(&self) {}
}

/// Stats shared by a listener's connections.
pub type Stats = Arc<dyn ConnStats>;

/// A server connection's TLS side, as tokio-rustls hands it over.
pub type TlsServerStream = tokio_rustls::server::TlsStream<TcpStream>;
/// Either side's TLS, as a connection's halves hold it: a client's to the listener, or
/// this proxy's own to a host outside the mesh (egress).
type TlsEither = tokio_rustls::TlsStream<TcpStream>;

/// A client's connection: plain TCP, or mutual TLS from a peer proxy.
pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsServerStream>),
}

pub struct Socket {
    stream: Stream,
    stats: Stats,
    _open: Open,
}

/// Reports the connection closed when the last part of it goes, and gives back its place
/// in the listener's count: an upgraded connection or a tunnel keeps both while it relays.
struct Open(Stats, Option<Slot>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.closed();
    }
}

/// A place in a count, given back when dropped: a connection's among those a listener
/// allows open, a stream's among those open on a client connection.
pub struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes a place in `open`, unless it already holds `max`.
    pub fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        if open.fetch_add(1, Ordering::Relaxed) >= max {
            open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Self(Arc::clone(open)))
    }

    /// Takes a place in `open` whatever it holds.
    pub(crate) fn hold(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(open))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Socket {
    pub fn new(stream: Stream, stats: &Stats) -> Self {
        stats.opened();
        Self {
            stream,
            stats: Arc::clone(stats),
            _open: Open(Arc::clone(stats), None),
        }
    }

    /// Holds `slot` for as long as any part of the connection lives.
    pub fn holding(mut self, slot: Slot) -> Self {
        self._open.1 = Some(slot);
        self
    }

    /// Separate halves, so a request body can read while the connection writes.
    pub fn split(self) -> (ReadSide, WriteSide) {
        let (rd, wr) = match self.stream {
            Stream::Tcp(s) => {
                let (rd, wr) = s.into_split();
                (Rd::Tcp(rd), Wr::Tcp(wr))
            }
            Stream::Tls(s) => {
                let (rd, wr) = tokio::io::split(TlsEither::Server(*s));
                (Rd::Tls(rd), Wr::Tls(tokio::sync::Mutex::new(wr)))
            }
        };
        let read = ReadSide {
            rd,
            stats: Some(Arc::clone(&self.stats)),
        };
        let write = WriteSide {
            wr,
            stats: Some(self.stats),
            open: Some(self._open),
            stall: None,
        };
        (read, write)
    }

    /// The halves made whole again (for HTTP/2 or an upgrade); `None` if they do not match.
    pub fn reunite(read: ReadSide, write: WriteSide) -> Option<Self> {
        let stream = match (read.rd, write.wr) {
            (Rd::Tcp(r), Wr::Tcp(w)) => Stream::Tcp(r.reunite(w).ok()?),
            (Rd::Tls(r), Wr::Tls(w)) => {
                let w = w.into_inner();
                if !r.is_pair_of(&w) {
                    return None;
                }
                match r.unsplit(w) {
                    TlsEither::Server(s) => Stream::Tls(Box::new(s)),
                    TlsEither::Client(_) => return None,
                }
            }
            _ => return None,
        };
        Some(Self {
            stream,
            stats: write.stats?,
            _open: write.open?,
        })
    }
}

/// Halves of an upstream connection, counted nowhere.
pub fn halves(stream: TcpStream) -> (ReadSide, WriteSide) {
    let (rd, wr) = stream.into_split();
    let read = ReadSide {
        rd: Rd::Tcp(rd),
        stats: None,
    };
    let write = WriteSide {
        wr: Wr::Tcp(wr),
        stats: None,
        open: None,
        stall: None,
    };
    (read, write)
}

/// Halves of an upstream TLS connection (egress), counted nowhere.
pub fn tls_halves(stream: tokio_rustls::client::TlsStream<TcpStream>) -> (ReadSide, WriteSide) {
    let (rd, wr) = tokio::io::split(TlsEither::Client(stream));
    let read = ReadSide {
        rd: Rd::Tls(rd),
        stats: None,
    };
    let write = WriteSide {
        wr: Wr::Tls(tokio::sync::Mutex::new(wr)),
        stats: None,
        open: None,
        stall: None,
    };
    (read, write)
}

enum Rd {
    Tcp(OwnedReadHalf),
    Tls(ReadHalf<TlsEither>),
}

/// TLS writes need the stream exclusively; the lock is uncontended but for a `100 Continue`.
enum Wr {
    Tcp(OwnedWriteHalf),
    Tls(tokio::sync::Mutex<WriteHalf<TlsEither>>),
}

pub struct ReadSide {
    rd: Rd,
    stats: Option<Stats>,
}

impl ReadSide {
    /// Reads into `buf`, first making room for `chunk` bytes when less than a quarter of
    /// that is free; `Ok(0)` is the end of the stream. A read that does not fill the space
    /// tells tokio the socket is drained, which spares the next read's `EAGAIN`.
    pub fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        chunk: usize,
    ) -> Poll<io::Result<usize>> {
        if buf.capacity() - buf.len() < chunk / 4 {
            buf.reserve(chunk);
        }
        let n = ready!(match &mut self.rd {
            Rd::Tcp(rd) => tokio_util::io::poll_read_buf(Pin::new(rd), cx, buf),
            Rd::Tls(rd) => tokio_util::io::poll_read_buf(Pin::new(rd), cx, buf),
        })?;
        if let Some(s) = &self.stats {
            s.read(n);
        }
        Poll::Ready(Ok(n))
    }

    pub async fn read_buf(&mut self, buf: &mut BytesMut, chunk: usize) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read_buf(cx, buf, chunk)).await
    }

    /// Whether the peer has sent anything (or closed) since the last read drained the socket:
    /// for an idle pooled connection, that means it cannot be reused. Costs no syscall.
    pub fn has_news(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match &self.rd {
            // The reader's waker slot rather than `readable()`'s waiter list: an idle pooled
            // connection has no reader, and a waiter is linked and unlinked under a lock.
            Rd::Tcp(rd) => rd.as_ref().poll_read_ready(&mut cx).is_ready(),
            // What the peer sent is behind rustls' buffer: a pooled TLS connection (egress)
            // closed under it shows on use, and the request goes again on a new one.
            Rd::Tls(_) => false,
        }
    }

    /// Waits until the socket has something to read, without a buffer. Only the one task
    /// that reads this socket may wait (it takes the reader's waker slot).
    pub async fn readable(&self) -> io::Result<()> {
        match &self.rd {
            Rd::Tcp(rd) => std::future::poll_fn(|cx| rd.as_ref().poll_read_ready(cx)).await,
            // TLS may hold decrypted bytes the socket no longer shows: go and read.
            Rd::Tls(_) => Ok(()),
        }
    }
}

pub struct WriteSide {
    wr: Wr,
    stats: Option<Stats>,
    open: Option<Open>,
    /// How long a write may wait for a client that reads nothing; none: for ever.
    stall: Option<std::time::Duration>,
}

impl WriteSide {
    /// A client that reads nothing for `limit` while a write waits on it fails the write:
    /// one that never reads cannot hold its connection, and what feeds it, for ever.
    pub fn bound_stalls(&mut self, limit: std::time::Duration) {
        self.stall = Some(limit);
    }

    /// Writes all of `parts`, gathered: one syscall for a head and its body when the
    /// socket takes them.
    pub async fn write_all(&self, parts: &mut [IoSlice<'_>]) -> io::Result<()> {
        let wr = match &self.wr {
            Wr::Tcp(wr) => wr,
            Wr::Tls(wr) => return self.write_all_tls(wr, parts).await,
        };
        let mut parts = parts;
        IoSlice::advance_slices(&mut parts, 0);
        while !parts.is_empty() {
            // Tried first, waited for only when the socket is full: nearly always it has
            // room, and a `writable()` wait is a waiter made, polled and dropped per write.
            // One buffer goes by send(2): cheaper in the kernel than writev(2).
            let tried = match parts {
                [one] => wr.try_write(one),
                _ => wr.try_write_vectored(parts),
            };
            match tried {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    if let Some(s) = &self.stats {
                        s.written(n);
                    }
                    IoSlice::advance_slices(&mut parts, n);
                }
                // The socket is full: the only place a write waits, so the only timer.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match self.stall {
                    None => wr.writable().await?,
                    Some(limit) => {
                        tokio::time::timeout(limit, wr.writable())
                            .await
                            .map_err(|_| {
                                io::Error::new(
                                    io::ErrorKind::TimedOut,
                                    format!("the client read nothing for {limit:?}"),
                                )
                            })??
                    }
                },
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn write_all_tls(
        &self,
        wr: &tokio::sync::Mutex<WriteHalf<TlsEither>>,
        parts: &[IoSlice<'_>],
    ) -> io::Result<()> {
        let mut wr = wr.lock().await;
        for part in parts {
            wr.write_all(part).await?;
            if let Some(s) = &self.stats {
                s.written(part.len());
            }
        }
        wr.flush().await
    }

    /// Writes without waiting; for the few bytes of a `100 Continue`.
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        let n = match &self.wr {
            Wr::Tcp(wr) => wr.try_write(bytes)?,
            Wr::Tls(wr) => {
                let mut wr = wr.try_lock().map_err(|_| io::ErrorKind::WouldBlock)?;
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let Poll::Ready(n) = Pin::new(&mut *wr).poll_write(&mut cx, bytes) else {
                    return Err(io::ErrorKind::WouldBlock.into());
                };
                // What rustls took is sent by the next write if the socket is full now.
                let _ = Pin::new(&mut *wr).poll_flush(&mut cx);
                n?
            }
        };
        if let Some(s) = &self.stats {
            s.written(n);
        }
        Ok(n)
    }

    /// Sends FIN (after TLS's close_notify): the client reads the end of the response,
    /// then the end of the stream.
    pub async fn shutdown(&mut self) {
        let _ = match &mut self.wr {
            Wr::Tcp(wr) => wr.shutdown().await,
            Wr::Tls(wr) => wr.get_mut().shutdown().await,
        };
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = match &mut self.stream {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        };
        let n = buf.filled().len() - before;
        self.stats.read(n);
        res
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = match &mut self.stream {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        };
        if let Poll::Ready(Ok(n)) = res {
            self.stats.written(n);
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = match &mut self.stream {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        };
        if let Poll::Ready(Ok(n)) = res {
            self.stats.written(n);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A socket whose first bytes were already read: they are read again first.
pub struct Rewind {
    pre: BytesMut,
    io: Socket,
}

impl Rewind {
    pub fn new(pre: BytesMut, io: Socket) -> Self {
        Self { pre, io }
    }

    /// What the connection reports to.
    pub fn stats(&self) -> Stats {
        Arc::clone(&self.io.stats)
    }

    /// The first `n` bytes still to be read (fewer if the peer ends the stream first),
    /// reading as many as that takes; they stay to be read again.
    pub async fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        while self.pre.len() < n {
            self.pre.reserve(n - self.pre.len());
            if self.io.read_buf(&mut self.pre).await? == 0 {
                break;
            }
        }
        Ok(&self.pre[..self.pre.len().min(n)])
    }

    pub(crate) fn into_parts(self) -> (Socket, BytesMut) {
        (self.io, self.pre)
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre[..n]);
            self.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
