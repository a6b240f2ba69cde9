//! A client's socket as the listeners hold it: every byte counted in the listener's metrics,
//! the open-connections gauge held while it lives; and the same socket with bytes already
//! read put back in front, for the HTTP/2 server and for upgraded (WebSocket) connections.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use weft_metrics::tcp::ListenerMetrics;

pub struct Socket {
    stream: TcpStream,
    metrics: ListenerMetrics,
}

impl Socket {
    pub fn new(stream: TcpStream, metrics: &ListenerMetrics) -> Self {
        metrics.open.inc();
        Self {
            stream,
            metrics: metrics.clone(),
        }
    }

    pub async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_read_ready(cx)
    }

    /// Reads what is there into `buf` without waiting; `Ok(0)` is the end of the stream.
    pub fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let n = self.stream.try_read_buf(buf)?;
        self.metrics.read_bytes.inc_by(n as u64);
        Ok(n)
    }

    /// Writes all of `parts`, gathered: one syscall for a head and its body when the
    /// socket takes them.
    pub async fn write_all(&self, parts: &mut [IoSlice<'_>]) -> io::Result<()> {
        let mut parts = parts;
        IoSlice::advance_slices(&mut parts, 0);
        while !parts.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write_vectored(parts) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.metrics.write_bytes.inc_by(n as u64);
                    IoSlice::advance_slices(&mut parts, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes without waiting; for the few bytes of a `100 Continue`.
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.stream.try_write(bytes)?;
        self.metrics.write_bytes.inc_by(n as u64);
        Ok(n)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.metrics.open.dec();
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
        self.metrics.read_bytes.inc_by(n as u64);
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
            self.metrics.write_bytes.inc_by(n as u64);
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
            self.metrics.write_bytes.inc_by(n as u64);
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
    pre: Bytes,
    io: Socket,
}

impl Rewind {
    pub fn new(pre: BytesMut, io: Socket) -> Self {
        Self {
            pre: pre.freeze(),
            io,
        }
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
