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
use super::io::WriteSide;
use crate::body::BoxError;

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
