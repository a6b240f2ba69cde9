//! One request's state from the moment its service is known: each part set once by the step
//! that learns it, and read by the steps that enforce it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::Response;
use weft_http::server::OnUpgrade;

use crate::balancer::EndpointState;
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::resilience::deadline::Deadline;
use crate::resilience::policy::Compiled;
use crate::respond;
use crate::routing::Routed;
use crate::services::Service;
use crate::tap::{Answer, Tapped};
use crate::trace::RequestTrace;

pub(crate) struct Ctx {
    /// When the request was received: latency and the deadline count from here.
    pub start: Instant,
    pub service: Arc<Service>,
    /// The rule of the service's routes the request matched, when it has routes.
    pub routed: Option<Routed>,
    /// The backend (of the rule's) the latest attempt went to.
    pub backend: Option<usize>,
    /// The service's (or its rule's) policy as it stood when the request arrived.
    pub policy: Arc<Compiled>,
    /// What the client addressed (`world`, `world.default:7778`); the request carries it
    /// onward in whatever form the next hop's protocol wants.
    pub authority: String,
    /// The tighter of the caller's deadline and the policy's total timeout.
    pub deadline: Option<Deadline>,
    /// The client's side of an upgrade, when the request asks for one.
    pub upgrade: Option<OnUpgrade>,
    /// Endpoints earlier attempts went to, which a retry avoids.
    pub tried: Vec<SocketAddr>,
    /// Attempts made beyond the first.
    pub retries: u32,
    /// The hops the request had made when it came (`weft-ctx-hops`); an app it is handed
    /// to directly is told one more.
    pub hops: u32,
    /// Where the latest attempt went: the client's view is recorded there.
    pub endpoint: Option<Arc<EndpointState>>,
    /// This proxy's spans of the request, with tracing on.
    pub trace: Option<Box<RequestTrace>>,
    /// Its tap, when a subscriber took it.
    pub tap: Option<Box<Tapped>>,
}

impl Ctx {
    pub(crate) fn new(
        start: Instant,
        service: Arc<Service>,
        policy: Arc<Compiled>,
        authority: String,
        deadline: Option<Deadline>,
    ) -> Self {
        Self {
            start,
            service,
            routed: None,
            backend: None,
            policy,
            authority,
            deadline,
            upgrade: None,
            tried: Vec::new(),
            retries: 0,
            hops: 0,
            endpoint: None,
            trace: None,
            tap: None,
        }
    }

    /// Whether the deadline passed before the request could be sent anywhere.
    pub(crate) fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| d.expired(self.start))
    }

    /// Answers with `err`, counted on the endpoint tried last, or on the service when none
    /// was picked.
    pub(crate) fn fail(&mut self, err: ProxyError) -> Response<ProxyBody> {
        let route = self
            .endpoint
            .as_ref()
            .map_or(&self.service.metrics, |e| &e.metrics);
        if let Some(r) = &self.routed {
            let rule = &r.rule().metrics;
            rule.request(self.start.elapsed());
            rule.response(weft_metrics::Classification::Failure);
        }
        let rsp = match self.trace.take() {
            None => respond::failed(route, self.start, &err),
            Some(mut t) => {
                let kept = t.keeps_failed();
                let mut rsp = respond::failed_traced(route, self.start, &err, kept);
                let _ = t.answered(rsp.headers_mut(), true);
                let status = Some(rsp.status().as_u16());
                t.finish(Instant::now(), status, true, err.kind());
                rsp
            }
        };
        if let Some(mut t) = self.tap.take() {
            let now = Instant::now();
            t.answered(now, self.answer(Some(&rsp), Some(err.kind())));
            t.end(now, false, None, err.kind());
        }
        rsp
    }

    /// What a tap is told of the answer: `rsp` is `None` when there was none.
    pub(crate) fn answer<'a, B>(
        &self,
        rsp: Option<&'a Response<B>>,
        error: Option<&'a str>,
    ) -> Answer<'a> {
        let status = rsp.map(|r| r.status().as_u16());
        Answer {
            status,
            failed: error.is_some() || status.is_none_or(|s| s >= 500),
            endpoint: self.endpoint.as_ref().map(|e| e.endpoint.addr),
            retries: self.retries,
            headers: rsp.map(Response::headers),
            error,
        }
    }
}

/// A request given up before its answer (the client went away, the connection was reset
/// or cut at the end of the drain) still ends its spans: the slow and failed requests that
/// tail keeping is for are the ones most often given up.
impl Drop for Ctx {
    fn drop(&mut self) {
        if let Some(t) = self.trace.take() {
            t.finish(Instant::now(), None, true, "client aborted");
        }
        if let Some(t) = self.tap.take() {
            t.end(Instant::now(), false, None, "client aborted");
        }
    }
}
