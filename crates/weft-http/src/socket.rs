//! A client's socket as a listener holds it: every byte and the connection's life reported
//! to the listener's [`ConnStats`]; and the same socket with bytes already read put back in
//! front, for the HTTP/2 server and for upgraded (WebSocket) connections.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
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
}

/// Stats shared by a listener's connections.
pub type Stats = Arc<dyn ConnStats>;

pub struct Socket {
    stream: TcpStream,
    stats: Stats,
    _open: Open,
}

/// Reports the connection closed when the last part of it goes.
struct Open(Stats);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.closed();
    }
}

impl Socket {
    pub fn new(stream: TcpStream, stats: &Stats) -> Self {
        stats.opened();
        Self {
            stream,
            stats: Arc::clone(stats),
            _open: Open(Arc::clone(stats)),
        }
    }

    /// Separate halves, so a request body can read while the connection writes.
    pub fn split(self) -> (ReadSide, WriteSide) {
        let (rd, wr) = self.stream.into_split();
        let read = ReadSide {
            rd,
            stats: Some(Arc::clone(&self.stats)),
        };
        let write = WriteSide {
            wr,
            stats: Some(self.stats),
            open: Some(self._open),
        };
        (read, write)
    }

    /// The halves made whole again (for HTTP/2 or an upgrade); `None` if they do not match.
    pub fn reunite(read: ReadSide, write: WriteSide) -> Option<Self> {
        let stream = read.rd.reunite(write.wr).ok()?;
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
    let read = ReadSide { rd, stats: None };
    let write = WriteSide {
        wr,
        stats: None,
        open: None,
    };
    (read, write)
}

pub struct ReadSide {
    rd: OwnedReadHalf,
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
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.rd),
            cx,
            buf
        ))?;
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
        // The reader's waker slot rather than `readable()`'s waiter list: an idle pooled
        // connection has no reader, and a waiter is linked and unlinked under a lock.
        self.rd.as_ref().poll_read_ready(&mut cx).is_ready()
    }

    /// Waits until the socket has something to read, without a buffer. Only the one task
    /// that reads this socket may wait (it takes the reader's waker slot).
    pub async fn readable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.rd.as_ref().poll_read_ready(cx)).await
    }
}

pub struct WriteSide {
    wr: OwnedWriteHalf,
    stats: Option<Stats>,
    open: Option<Open>,
}

impl WriteSide {
    /// Writes all of `parts`, gathered: one syscall for a head and its body when the
    /// socket takes them.
    pub async fn write_all(&self, parts: &mut [IoSlice<'_>]) -> io::Result<()> {
        let mut parts = parts;
        IoSlice::advance_slices(&mut parts, 0);
        while !parts.is_empty() {
            // Tried first, waited for only when the socket is full: nearly always it has
            // room, and a `writable()` wait is a waiter made, polled and dropped per write.
            // One buffer goes by send(2): cheaper in the kernel than writev(2).
            let tried = match parts {
                [one] => self.wr.try_write(one),
                _ => self.wr.try_write_vectored(parts),
            };
            match tried {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    if let Some(s) = &self.stats {
                        s.written(n);
                    }
                    IoSlice::advance_slices(&mut parts, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wr.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes without waiting; for the few bytes of a `100 Continue`.
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.wr.try_write(bytes)?;
        if let Some(s) = &self.stats {
            s.written(n);
        }
        Ok(n)
    }

    /// Sends FIN: the client reads the end of the response, then the end of the stream.
    pub async fn shutdown(&mut self) {
        let _ = self.wr.shutdown().await;
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.stream).poll_read(cx, buf);
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
        let res = Pin::new(&mut self.stream).poll_write(cx, buf);
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
        let res = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            self.stats.written(n);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
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
