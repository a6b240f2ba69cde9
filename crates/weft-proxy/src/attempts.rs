//! The outbound's attempts: pick an endpoint, send, record the outcome, and go again while
//! the retry verdict, the budget and the body allow; the last answer is the client's.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use weft_http::ClientBody;
use weft_metrics::Classification;

use crate::balancer::{EndpointState, Pick};
use crate::body::{self, ProxyBody};
use crate::context::Ctx;
use crate::delivery::{self, Failed};
use crate::error::ProxyError;
use crate::record;
use crate::replay::{self, Outgoing};
use crate::resilience::retry::{self, Standing};
use crate::routing::{self, Routed};
use crate::services::Service;
use crate::shared::Shared;
use crate::tap::Answer;

/// Sends the request until an attempt's answer is final. Not an async fn: the request is
/// split before the future is made, so the future does not also keep the whole of it.
pub(crate) fn attempts<'a>(
    shared: &'a Shared,
    ctx: &'a mut Ctx,
    req: Request<ClientBody>,
) -> impl Future<Output = Result<Response<ProxyBody>, ProxyError>> + 'a {
    let rules = &ctx.policy.policy;
    let retries = rules.retry.max_retries > 0;
    // An upgrade's body is never kept: the connection it opens is the client's own.
    let keep = if ctx.upgrade.is_some() {
        0
    } else {
        rules.retry.buffer_limit
    };
    let mut req = Outgoing::prepare(req, retries, keep);
    async move {
        req.ready().await?;
        // The request's start stands in for now: the budget counts whole seconds.
        ctx.service.budget.deposit(ctx.start);
        loop {
            // One clock reading serves the pick and the attempt's start. With routes, the
            // attempt goes to a backend drawn by weight, and to one of its endpoints.
            let (endpoint, sent_at) = match &ctx.routed {
                None => {
                    let now = Instant::now();
                    (pick(shared, ctx, &ctx.service, now)?, now)
                }
                Some(routed) => {
                    let (b, endpoint, now) = pick_backend(shared, ctx, routed).await?;
                    ctx.backend = Some(b);
                    (endpoint, now)
                }
            };
            ctx.endpoint = Some(Arc::clone(&endpoint));
            let (mut attempt, aborted) = req.attempt();
            if let Some(t) = ctx.trace.as_mut() {
                t.attempt(attempt.headers_mut(), &endpoint, sent_at);
            }
            let load = endpoint.start();
            let upgrade = ctx.upgrade.take();
            let mut sent =
                delivery::to_endpoint(&shared.upstreams, ctx, &endpoint, attempt, upgrade, sent_at)
                    .await;
            let now = Instant::now();
            if let Err(failed) = &mut sent {
                if replay::aborted(&aborted) {
                    failed.error = ProxyError::ClientAborted;
                }
                // A request that never left comes back, so even a streamed body can go again.
                if let Some(r) = failed.request.as_mut() {
                    req.hand_back(r);
                }
            }
            let policy = &ctx.policy;
            let answer = delivery::answer(&sent);
            let class = record::attempt(&endpoint, answer, sent_at, now, &policy.policy);
            if let (Some(r), Some(b)) = (&ctx.routed, ctx.backend) {
                r.rule().metrics.backends[b].attempt(class, now - sent_at);
            }
            if let Some(t) = ctx.trace.as_mut() {
                match &mut sent {
                    Ok(rsp) => {
                        let failed = class == Classification::Failure;
                        // Only a peer proxy's answer may say the trace is kept below.
                        let from_peer = endpoint.endpoint.node_proxy.is_some();
                        let answer = (rsp.status().as_u16(), rsp.headers_mut());
                        t.attempt_answered(now, answer, from_peer, failed);
                    }
                    Err(f) => t.attempt_failed(now, f.error.kind()),
                }
            }
            // Read again after the span's reading, which took the answer mutably (a peer's
            // mark comes off it).
            let answer = delivery::answer(&sent);
            let standing = Standing {
                retries: ctx.retries,
                can_resend: req.can_resend(),
                deadline: ctx.deadline.map(|d| d.at),
                now,
            };
            if retry::worth_retrying(policy, req.method(), answer, standing) {
                let rules = &policy.policy.retry;
                if ctx.service.budget.try_withdraw(now, rules) {
                    let wait = retry::backoff(ctx.retries + 1, rules.backoff, rules.backoff_max);
                    ctx.retries += 1;
                    // Also against the endpoint whose failure it follows: which instances
                    // retries cover for.
                    ctx.service.counters.retries.inc();
                    endpoint.metrics.retried();
                    ctx.tried.push(endpoint.endpoint.addr);
                    drop(sent);
                    drop(load);
                    // Boxed, like the body's reading: a timer is large, and retries are rare.
                    Box::pin(tokio::time::sleep(wait)).await;
                    continue;
                }
                ctx.service.counters.budget_exhausted.inc();
                endpoint.metrics.retry_refused();
            }
            return match sent {
                Ok(mut rsp) => {
                    let failed = class == Classification::Failure;
                    let kept = ctx
                        .trace
                        .as_mut()
                        .and_then(|t| t.answered(rsp.headers_mut(), failed));
                    let status = rsp.status();
                    let mut completion =
                        record::answered(&endpoint, ctx.start, now, status, class, load, kept);
                    if let Some(r) = &ctx.routed {
                        completion.on_route(r.clone(), now - ctx.start);
                    }
                    completion.traced(ctx.trace.take());
                    if let Some(mut t) = ctx.tap.take() {
                        t.answered(
                            now,
                            Answer {
                                failed,
                                ..ctx.answer(Some(&rsp), None)
                            },
                        );
                        completion.tapped(t);
                    }
                    Ok(body::forwarded(rsp, completion))
                }
                Err(Failed { error, .. }) => Err(error),
            };
        }
    }
}

/// A backend of the request's rule, drawn by weight, and an endpoint of it. A backend with
/// no endpoint this request has not tried and failure accrual admits gives way to the
/// others, drawn again by weight, so a retry moves off a failing canary and a canary whose
/// endpoints are all ejected costs callers nothing; with none left, any endpoint will do.
async fn pick_backend(
    shared: &Shared,
    ctx: &Ctx,
    routed: &Routed,
) -> Result<(usize, Arc<EndpointState>, Instant), ProxyError> {
    let mut skip = 0u32;
    let mut fresh_only = true;
    loop {
        let found = match routing::backend(&shared.outbound, routed, skip).await {
            Ok((b, service)) => {
                let now = Instant::now();
                let fresh = |e: &Arc<EndpointState>| {
                    e.accrual.eligible(now) && !ctx.tried.contains(&e.endpoint.addr)
                };
                if fresh_only && !service.endpoints().list.iter().any(fresh) {
                    Err((b, None))
                } else {
                    pick(shared, ctx, &service, now)
                        .map(|e| (b, e, now))
                        .map_err(|e| (b, Some(e)))
                }
            }
            Err((b, e)) => Err((b, Some(e))),
        };
        match found {
            Ok(picked) => return Ok(picked),
            Err((b, e)) => {
                skip |= 1 << b;
                if routed.rule().draw(skip).is_some() {
                    continue;
                }
                if fresh_only {
                    // Every backend tried or failing: once more, taking what is there.
                    fresh_only = false;
                    skip = 0;
                    continue;
                }
                return Err(e.unwrap_or_else(|| ProxyError::NoEndpoints {
                    service: routed.rule().backends[b].clone(),
                }));
            }
        }
    }
}

/// An endpoint of `service` (the request's, or its route's backend) for the next attempt,
/// avoiding the ones tried; an error when every endpoint is ejected, or there are none.
fn pick(
    shared: &Shared,
    ctx: &Ctx,
    service: &Service,
    now: Instant,
) -> Result<Arc<EndpointState>, ProxyError> {
    let endpoints = service.endpoints();
    let policy = &ctx.policy.policy.balancer;
    let mut candidates = &endpoints.list[..];
    if !endpoints.groups.is_empty() {
        // Failover: the first group with an endpoint that failure accrual admits and this
        // request has not tried; when there is none, every endpoint as usual.
        let open = |e: &Arc<EndpointState>| {
            e.accrual.eligible(now) && !ctx.tried.contains(&e.endpoint.addr)
        };
        if let Some(g) = endpoints.groups().find(|g| g.iter().any(open)) {
            candidates = g;
        }
    }
    match shared.balancer.pick(candidates, &ctx.tried, policy, now) {
        Pick::Endpoint(e) => Ok(Arc::clone(e)),
        Pick::AllEjected => Err(ProxyError::CircuitOpen {
            service: service.name.clone(),
        }),
        Pick::Empty => Err(ProxyError::NoEndpoints {
            service: service.name.clone(),
        }),
    }
}
