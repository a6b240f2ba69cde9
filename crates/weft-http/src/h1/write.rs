//! Writes an HTTP/1 message body after its head, framed (Content-Length, chunked with
//! trailers, or until close), with as few writes as the body's timing allows: a small frame
//! goes out in one write with its head or chunk line.

use std::future::poll_fn;
use std::io::{IoSlice, Write as _};
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;

use super::head::BodyFraming;
use crate::error::BoxError;
use crate::socket::WriteSide;

/// Body frames up to this size are copied beside their head or chunk line: one write.
const COALESCE: usize = 16 * 1024;

/// Writes the head in `out` and the body after it, framed; false when the response could
/// not be written whole (the connection must close).
pub async fn body<B>(io: &WriteSide, body: &mut B, framing: BodyFraming, mut out: Vec<u8>) -> bool
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
        super::head::write_header(out, name, value);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::task::Context;

    use http_body::{Frame, SizeHint};
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::socket;

    /// A body of the frames given, each ready at once.
    struct Frames(VecDeque<Frame<Bytes>>, Option<u64>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }

        fn size_hint(&self) -> SizeHint {
            self.1.map(SizeHint::with_exact).unwrap_or_default()
        }
    }

    /// What a peer reads when `body` is written after `head` with `framing` on a real socket.
    async fn on_the_wire(head: &str, mut body: Frames, framing: BodyFraming) -> (bool, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (ours, _) = listener.accept().await.unwrap();
        let (_rd, mut wr) = socket::halves(ours);
        let whole = super::body(&wr, &mut body, framing, head.as_bytes().to_vec()).await;
        wr.shutdown().await;
        let mut peer = peer;
        let mut got = String::new();
        peer.read_to_string(&mut got).await.unwrap();
        (whole, got)
    }

    fn frames(frames: Vec<Frame<Bytes>>, exact: Option<u64>) -> Frames {
        Frames(frames.into(), exact)
    }

    #[tokio::test]
    async fn a_chunked_body_goes_out_with_its_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let body = frames(
            vec![
                Frame::data(Bytes::from_static(b"hello")),
                Frame::data(Bytes::from_static(b" world")),
                Frame::trailers(trailers),
            ],
            None,
        );
        let (whole, got) = on_the_wire("HEAD\r\n\r\n", body, BodyFraming::Chunked).await;
        assert!(whole);
        assert_eq!(
            got,
            "HEAD\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\ngrpc-status: 0\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn a_sized_body_is_cut_at_its_length_and_a_short_one_is_not_whole() {
        let body = frames(vec![Frame::data(Bytes::from_static(b"abcdef"))], Some(6));
        let (whole, got) = on_the_wire("H\r\n\r\n", body, BodyFraming::Length(3)).await;
        assert!(whole);
        assert_eq!(got, "H\r\n\r\nabc");
        let body = frames(vec![Frame::data(Bytes::from_static(b"ab"))], None);
        let (whole, got) = on_the_wire("H\r\n\r\n", body, BodyFraming::Length(3)).await;
        assert!(!whole, "a body that ended short must close the connection");
        assert_eq!(got, "H\r\n\r\nab");
    }

    #[tokio::test]
    async fn a_large_frame_goes_beside_its_chunk_line_not_copied() {
        let big = Bytes::from(vec![b'x'; COALESCE + 1]);
        let body = frames(vec![Frame::data(big)], None);
        let (whole, got) = on_the_wire("H\r\n\r\n", body, BodyFraming::Chunked).await;
        assert!(whole);
        let expected = format!(
            "H\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            COALESCE + 1,
            "x".repeat(COALESCE + 1)
        );
        assert_eq!(got, expected);
    }
}
