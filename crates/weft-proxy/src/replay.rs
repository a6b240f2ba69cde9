//! The request as its attempts send it. A small body is read whole first when another
//! attempt could need it, so each attempt sends a copy; a large or unsized one streams with
//! the first attempt, and the request goes again only if that attempt never left. The head
//! is copied per attempt only while another attempt may follow.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, Request};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use weft_http::{BoxError, ClientBody};

use crate::error::ProxyError;

/// A request body on its way upstream: streamed from the client, or kept whole so that a
/// retry can send it again.
pub(crate) enum RequestBody {
    /// The client's body, streamed; `aborted` turns true if the client fails it midway.
    Streaming {
        body: ClientBody,
        aborted: Arc<AtomicBool>,
    },
    Buffered {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
    },
}

/// A small body being read whole. Boxed: most requests have no body, and the reading
/// state would enlarge every request's future.
type Reading = Pin<Box<dyn Future<Output = Result<RequestBody, ProxyError>> + Send>>;

pub(crate) struct Outgoing {
    method: Method,
    /// The head each attempt's copy is made from; with `copies` off, the one attempt takes it.
    parts: Option<Parts>,
    copies: bool,
    /// The body not yet sent: a kept one stays for copies; a streamed one leaves with the
    /// first attempt and comes back only if that attempt never left.
    body: Option<RequestBody>,
    /// The body is kept whole: every attempt can send it.
    replayable: bool,
    /// The body being read whole before the first attempt.
    reading: Option<Reading>,
}

impl Outgoing {
    /// Prepares `req` for attempts. With `retries` off there is one attempt, which takes the
    /// request as it is. With them on, a body whose declared length is at most `keep` bytes
    /// is kept whole for every attempt; an unsized or larger one streams with the first,
    /// and `keep` 0 keeps none (an upgrade's: its connection is the client's own).
    pub(crate) fn prepare(req: Request<ClientBody>, retries: bool, keep: usize) -> Self {
        let (parts, body) = req.into_parts();
        let mut outgoing = Self {
            method: parts.method.clone(),
            parts: Some(parts),
            copies: retries,
            body: None,
            replayable: false,
            reading: None,
        };
        let kept = retries && keep > 0;
        if body.is_end_stream() {
            // Nothing to read or stream: an empty body, every attempt's if kept.
            outgoing.body = Some(RequestBody::empty());
            outgoing.replayable = kept;
            return outgoing;
        }
        match body.size_hint().exact() {
            Some(n) if kept && n <= keep as u64 => {
                outgoing.reading = Some(Box::pin(read_whole(body)));
            }
            _ => outgoing.body = Some(RequestBody::streaming(body)),
        }
        outgoing
    }

    /// Ready for the first attempt: a body being kept has been read whole.
    pub(crate) async fn ready(&mut self) -> Result<(), ProxyError> {
        if let Some(reading) = self.reading.take() {
            self.body = Some(reading.await?);
            self.replayable = true;
        }
        Ok(())
    }

    pub(crate) fn method(&self) -> &Method {
        &self.method
    }

    /// Whether another attempt could send the request again: its body is kept, or came
    /// back unsent, and its head is still here.
    pub(crate) fn can_resend(&self) -> bool {
        (self.replayable || self.body.is_some()) && (self.copies || self.parts.is_some())
    }

    /// The next attempt's request, and the flag that turns true if the client breaks off a
    /// streamed body midway.
    pub(crate) fn attempt(&mut self) -> (Request<RequestBody>, Option<Arc<AtomicBool>>) {
        let kept = self.body.as_ref().filter(|_| self.replayable);
        let body = match kept.and_then(RequestBody::replay) {
            Some(copy) => copy,
            None => self.body.take().unwrap_or_else(RequestBody::empty),
        };
        let aborted = body.abort_flag();
        let req = match (&self.parts, self.copies) {
            (Some(parts), true) => rebuild(parts, body),
            _ => match self.parts.take() {
                Some(parts) => Request::from_parts(parts, body),
                // Not reached: without copies the one attempt took the head, and
                // `can_resend` says no from then on.
                None => Request::new(body),
            },
        };
        (req, aborted)
    }

    /// A request handed back by an attempt that never left: its body can go again, even a
    /// streamed one.
    pub(crate) fn hand_back(&mut self, req: &mut Request<RequestBody>) {
        if self.body.is_none() {
            self.body = Some(std::mem::replace(req.body_mut(), RequestBody::empty()));
        }
    }
}

async fn read_whole(body: ClientBody) -> Result<RequestBody, ProxyError> {
    let collected = body
        .collect()
        .await
        .map_err(|_| ProxyError::BadRequest("the client's body ended early"))?;
    let trailers = collected.trailers().cloned();
    let data = collected.to_bytes();
    Ok(RequestBody::Buffered {
        data: (!data.is_empty()).then_some(data),
        trailers,
    })
}

/// A new request for one attempt, from the original's head and a body.
fn rebuild(parts: &Parts, body: RequestBody) -> Request<RequestBody> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    req
}

impl RequestBody {
    pub(crate) fn streaming(body: ClientBody) -> Self {
        Self::Streaming {
            body,
            aborted: Arc::default(),
        }
    }

    pub(crate) fn empty() -> Self {
        Self::Buffered {
            data: None,
            trailers: None,
        }
    }

    /// Turns true if the client breaks off the body; `None` for kept bodies.
    fn abort_flag(&self) -> Option<Arc<AtomicBool>> {
        match self {
            Self::Streaming { aborted, .. } => Some(Arc::clone(aborted)),
            Self::Buffered { .. } => None,
        }
    }

    /// A copy to send again, if this body is kept whole.
    fn replay(&self) -> Option<Self> {
        match self {
            Self::Streaming { .. } => None,
            Self::Buffered { data, trailers } => Some(Self::Buffered {
                data: data.clone(),
                trailers: trailers.clone(),
            }),
        }
    }
}

/// Whether the client broke off the body an attempt was streaming.
pub(crate) fn aborted(flag: &Option<Arc<AtomicBool>>) -> bool {
    flag.as_ref().is_some_and(|a| a.load(Ordering::Relaxed))
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut *self {
            Self::Streaming { body, aborted } => {
                let polled = Pin::new(body).poll_frame(cx);
                if let Poll::Ready(Some(Err(_))) = &polled {
                    aborted.store(true, Ordering::Relaxed);
                }
                polled
            }
            Self::Buffered { data, trailers } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Streaming { body, .. } => body.is_end_stream(),
            Self::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Streaming { body, .. } => body.size_hint(),
            Self::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodiless() -> Request<ClientBody> {
        let body = ClientBody::H1(weft_http::RecvBody::empty());
        Request::get("http://world/").body(body).unwrap()
    }

    #[test]
    fn a_kept_body_goes_with_every_attempt_and_its_head_is_copied() {
        let mut req = Outgoing::prepare(bodiless(), true, 64 * 1024);
        for _ in 0..3 {
            let (attempt, aborted) = req.attempt();
            assert_eq!(attempt.uri(), "http://world/");
            assert!(aborted.is_none());
            assert!(req.can_resend());
        }
    }

    #[test]
    fn without_retries_or_for_an_upgrade_the_one_attempt_takes_the_request() {
        for (retries, keep) in [(false, 64 * 1024), (true, 0)] {
            let mut req = Outgoing::prepare(bodiless(), retries, keep);
            let (attempt, _) = req.attempt();
            assert_eq!(attempt.uri(), "http://world/");
            assert!(!req.can_resend(), "retries {retries}, keep {keep}");
        }
    }

    #[test]
    fn a_request_that_never_left_can_go_again_only_while_its_head_is_kept() {
        let mut req = Outgoing::prepare(bodiless(), true, 0);
        let (mut attempt, _) = req.attempt();
        assert!(!req.can_resend());
        req.hand_back(&mut attempt);
        assert!(req.can_resend());
        let mut once = Outgoing::prepare(bodiless(), false, 0);
        let (mut attempt, _) = once.attempt();
        once.hand_back(&mut attempt);
        assert!(!once.can_resend(), "the one attempt took the head");
    }
}
