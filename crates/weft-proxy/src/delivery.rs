//! One attempt's exchange with an instance or a peer proxy, over the transport's clients:
//! the request put in the form the next hop speaks, sent, and bounded by the per-attempt
//! timeout. The exchange is chosen and prepared before it is first polled, and its future is
//! an enum of the clients' futures rather than an async fn around them, so no layer keeps a
//! second copy of the request for its whole life.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::HeaderValue;
use http::{Request, Response, Version};
use pin_project_lite::pin_project;
use weft_core::headers::{WEFT_DST_SERVICE, WEFT_ERROR, WEFT_ORIG_PROTO};
use weft_core::Protocol;
use weft_http::client::{upgrade, Connector, H1Pool, H2Pool};
use weft_http::server::OnUpgrade;
use weft_http::timers::{Timers, WithDeadline};
use weft_http::H2Body;
use weft_http::UpstreamBody;
use weft_http::{forms, ResponseBody, SendError};

use crate::balancer::EndpointState;
use crate::context::Ctx;
use crate::error::ProxyError;
use crate::replay::RequestBody;
use crate::resilience::retry::Answer;

/// The upstream side of the proxy: its clients, and the timers that bound their exchanges.
pub(crate) struct Upstreams {
    /// To instances: pooled HTTP/1.1 and their own HTTP/2, in plaintext.
    pub h1: Arc<H1Pool>,
    pub h2: Arc<H2Pool>,
    /// To peer proxies: the shared HTTP/2 hop, in mutual TLS when the mesh has identities.
    pub peers: Arc<H2Pool>,
    /// To peer proxies for upgrades and tunnels, a connection each.
    pub peer_connector: Connector,
    pub timers: Timers,
}

/// Where an exchange goes: a peer proxy (over the mesh's hop, on the node named when
/// known) or an instance.
#[derive(Clone, Copy)]
pub(crate) enum Hop<'a> {
    Peer(SocketAddr, Option<&'a str>),
    Instance(SocketAddr),
    /// A host outside the mesh reached in TLS, through its own pool.
    Origin(SocketAddr, &'a Arc<H1Pool>),
}

/// An attempt that failed; `request` is handed back when it never left, so it can be sent
/// elsewhere whatever its body. Boxed: it is rare, and every attempt's result has room for it.
pub(crate) struct Failed {
    pub error: ProxyError,
    pub request: Option<Box<Request<RequestBody>>>,
}

/// One attempt's outcome.
pub(crate) type Sent = Result<Response<ResponseBody>, Failed>;

/// What an attempt came back with, as the verdict and the records read it.
pub(crate) fn answer(sent: &Sent) -> Answer<'_> {
    match sent {
        Ok(rsp) => Answer::Response(rsp.status(), rsp.headers()),
        Err(failed) => Answer::Error(&failed.error),
    }
}

type ClientSent<B> = Result<Response<B>, SendError<RequestBody>>;

impl From<ProxyError> for Failed {
    fn from(error: ProxyError) -> Self {
        Self {
            error,
            request: None,
        }
    }
}

impl From<SendError<RequestBody>> for Failed {
    fn from(e: SendError<RequestBody>) -> Self {
        Self {
            error: e.error.into(),
            request: e.request,
        }
    }
}

/// One attempt to one endpoint: through the peer proxy on its node (the shared HTTP/2 hop),
/// or straight to it; bounded by the per-attempt timeout, and carrying the deadline as of
/// `now`.
pub(crate) fn to_endpoint<'a>(
    upstreams: &'a Upstreams,
    ctx: &'a Ctx,
    endpoint: &'a EndpointState,
    mut req: Request<RequestBody>,
    upgrade: Option<OnUpgrade>,
    now: Instant,
) -> Bounded<
    'a,
    impl Future<Output = ClientSent<UpstreamBody>> + 'a,
    impl Future<Output = ClientSent<H2Body>> + 'a,
> {
    let orig = req.version();
    let ep = &endpoint.endpoint;
    let (protocol, hop) = match ep.node_proxy {
        Some(peer) => {
            let h = req.headers_mut();
            h.insert(WEFT_DST_SERVICE, endpoint.route.clone());
            // A peer proxy is told the time left; an instance (below), the deadline itself.
            if let Some(d) = ctx.deadline {
                d.to_peer(h, now);
            }
            // The hop is HTTP/2 whatever the client spoke; the far side restores it. Only
            // HTTP/1.0 needs saying: without the header an instance gets HTTP/1.1 (or its
            // own HTTP/2), and every header on the hop costs HPACK work at both ends. An
            // upgrade crosses as HTTP/1.1 on a connection of its own.
            if upgrade.is_none() && orig == Version::HTTP_10 {
                h.insert(WEFT_ORIG_PROTO, HeaderValue::from_static("HTTP/1.0"));
            }
            (Protocol::Http2, Hop::Peer(peer, endpoint.node.as_deref()))
        }
        None if endpoint.outside => {
            // Outside the mesh nobody is owed the mesh's context: a staging override or a
            // deadline an app forwarded would tell a third party about the mesh. The hop
            // count stays, so a host that leads back into the mesh still counts up.
            crate::carried::outside(req.headers_mut(), ctx.hops);
            match &endpoint.origin {
                Some(pool) => (Protocol::Http1, Hop::Origin(ep.addr, pool)),
                None => (ep.protocol, Hop::Instance(ep.addr)),
            }
        }
        None => {
            // Handed straight to the app: a hop (the peer's inbound counts its own).
            crate::carried::count_hop(req.headers_mut(), ctx.hops);
            if let Some(d) = ctx.deadline {
                d.to_instance(req.headers_mut(), now);
            }
            (ep.protocol, Hop::Instance(ep.addr))
        }
    };
    let per_attempt = ctx.policy.policy.timeout.per_attempt;
    // Built in place: a delivery made beside the struct would be copied into it.
    Bounded {
        attempt: upstreams.timers.bound(
            (!per_attempt.is_zero()).then(|| now + per_attempt),
            deliver(upstreams, hop, protocol, req, &ctx.authority, orig, upgrade),
        ),
        endpoint: ep.addr,
        timeout: per_attempt,
    }
}

/// Sends to `addr` in `protocol`: pooled HTTP/1.1, the shared HTTP/2 connection, or a
/// connection of its own for an upgrade.
pub(crate) fn deliver<'a>(
    upstreams: &'a Upstreams,
    hop: Hop<'a>,
    protocol: Protocol,
    mut req: Request<RequestBody>,
    authority: &'a str,
    orig: Version,
    upgrade: Option<OnUpgrade>,
) -> Delivery<
    'a,
    impl Future<Output = ClientSent<UpstreamBody>> + 'a,
    impl Future<Output = ClientSent<H2Body>> + 'a,
> {
    let (Hop::Peer(addr, _) | Hop::Instance(addr) | Hop::Origin(addr, _)) = hop;
    if let Some(downstream) = upgrade {
        let (connector, name) = match hop {
            Hop::Peer(_, name) => (&upstreams.peer_connector, name),
            Hop::Instance(_) => (upstreams.h1.connector(), None),
            Hop::Origin(..) => {
                let why = "an upgrade is not carried to a host reached in TLS";
                return Delivery::Failed {
                    error: Some(ProxyError::BadRequest(why)),
                };
            }
        };
        return Delivery::Boxed {
            send: Box::pin(async move {
                forms::to_h1(&mut req, authority, orig).map_err(ProxyError::BadRequest)?;
                let mut rsp = upgrade::send(connector, addr, name, req, downstream)
                    .await
                    .map_err(ProxyError::from)?;
                if !matches!(hop, Hop::Peer(..)) {
                    rsp.headers_mut().remove(WEFT_ERROR);
                }
                Ok(rsp.map(ResponseBody::H1))
            }),
        };
    }
    let prepared = match protocol {
        Protocol::Http1 => forms::to_h1(&mut req, authority, orig),
        Protocol::Http2 => forms::to_h2(&mut req, authority),
    };
    match (prepared, protocol) {
        (Err(why), _) => Delivery::Failed {
            error: Some(ProxyError::BadRequest(why)),
        },
        (Ok(()), Protocol::Http1) => Delivery::H1 {
            send: match hop {
                Hop::Origin(_, pool) => pool.send(addr, req),
                _ => upstreams.h1.send(addr, req),
            },
        },
        (Ok(()), Protocol::Http2) => Delivery::H2 {
            send: match hop {
                Hop::Peer(_, name) => upstreams.peers.send(addr, name, req),
                Hop::Instance(_) | Hop::Origin(..) => upstreams.h2.send(addr, None, req),
            },
            from_app: !matches!(hop, Hop::Peer(..)),
        },
    }
}

pin_project! {
    #[project = Proj]
    /// Only weft speaks `weft-error`: an app's is removed from its response, so a forged
    /// "never delivered" cannot get a request sent twice. A peer proxy's stays.
    pub(crate) enum Delivery<'a, H1, H2> {
        /// The pooled HTTP/1.1 client: always to an app (its parser drops `weft-error`).
        H1 { #[pin] send: H1 },
        /// The shared HTTP/2 connection (an instance's own, or the hop to a peer proxy).
        H2 { #[pin] send: H2, from_app: bool },
        /// An upgrade: rare, and its future is large.
        Boxed { send: Pin<Box<dyn Future<Output = Sent> + Send + 'a>> },
        /// Refused before anything was sent.
        Failed { error: Option<ProxyError> },
    }
}

impl<H1, H2> Future for Delivery<'_, H1, H2>
where
    H1: Future<Output = ClientSent<UpstreamBody>>,
    H2: Future<Output = ClientSent<H2Body>>,
{
    type Output = Sent;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Sent> {
        match self.project() {
            // The HTTP/1.1 client leaves an instance's `weft-error` out as it parses.
            Proj::H1 { send } => send.poll(cx).map(|sent| {
                sent.map(|rsp| rsp.map(ResponseBody::H1))
                    .map_err(Failed::from)
            }),
            Proj::H2 { send, from_app } => send.poll(cx).map(|sent| {
                sent.map(|mut rsp| {
                    if *from_app {
                        rsp.headers_mut().remove(WEFT_ERROR);
                    }
                    rsp.map(ResponseBody::H2)
                })
                .map_err(Failed::from)
            }),
            Proj::Boxed { send } => send.as_mut().poll(cx),
            Proj::Failed { error } => match error.take() {
                Some(e) => Poll::Ready(Err(e.into())),
                None => Poll::Pending,
            },
        }
    }
}

pin_project! {
    /// An attempt bounded by its per-attempt timeout (none, when `attempt` has no deadline).
    /// A struct built where it is returned: an async block would hold the delivery twice
    /// (captured and awaited).
    pub(crate) struct Bounded<'a, H1, H2> {
        #[pin]
        attempt: WithDeadline<'a, Delivery<'a, H1, H2>>,
        endpoint: SocketAddr,
        timeout: Duration,
    }
}

impl<H1, H2> Future for Bounded<'_, H1, H2>
where
    H1: Future<Output = ClientSent<UpstreamBody>>,
    H2: Future<Output = ClientSent<H2Body>>,
{
    type Output = Sent;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Sent> {
        let this = self.project();
        this.attempt.poll(cx).map(|sent| {
            sent.unwrap_or_else(|| {
                Err(ProxyError::AttemptTimeout {
                    endpoint: *this.endpoint,
                    timeout: *this.timeout,
                }
                .into())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::{pending, ready, Pending, Ready};

    type Stalled =
        Delivery<'static, Pending<ClientSent<UpstreamBody>>, Pending<ClientSent<H2Body>>>;

    fn bounded<'a, H1, H2>(
        timers: &'a Timers,
        inner: Delivery<'a, H1, H2>,
        limit: Option<Instant>,
    ) -> Bounded<'a, H1, H2>
    where
        H1: Future<Output = ClientSent<UpstreamBody>>,
        H2: Future<Output = ClientSent<H2Body>>,
    {
        Bounded {
            attempt: timers.bound(limit, inner),
            endpoint: ([127, 0, 0, 1], 1).into(),
            timeout: Duration::from_millis(20),
        }
    }

    #[tokio::test]
    async fn without_a_limit_it_waits_and_with_one_it_gives_up() {
        let answered: Delivery<
            'static,
            Ready<ClientSent<UpstreamBody>>,
            Pending<ClientSent<H2Body>>,
        > = Delivery::H1 {
            send: ready(Ok(Response::new(UpstreamBody::empty()))),
        };
        let timers = Timers::default();
        assert!(bounded(&timers, answered, None).await.is_ok());
        let stalled: Stalled = Delivery::H1 { send: pending() };
        let started = Instant::now();
        let at = started + Duration::from_millis(20);
        let Err(err) = bounded(&timers, stalled, Some(at)).await else {
            panic!("a stalled attempt answered");
        };
        assert!(
            matches!(err.error, ProxyError::AttemptTimeout { .. }),
            "{:?}",
            err.error
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
