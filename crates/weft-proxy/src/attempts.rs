//! The outbound's attempts: pick an endpoint, send, record the outcome, and go again while
//! the retry verdict, the budget and the body allow; the last answer is the client's.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use weft_http::ClientBody;

use crate::balancer::{EndpointState, Pick};
use crate::body::{self, ProxyBody};
use crate::context::Ctx;
use crate::delivery::{self, Failed};
use crate::error::ProxyError;
use crate::record;
use crate::replay::{self, Outgoing};
use crate::resilience::retry::{self, Standing};
use crate::shared::Shared;

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
            // One clock reading serves the pick and the attempt's start.
            let sent_at = Instant::now();
            let endpoint = pick(shared, ctx, sent_at)?;
            ctx.endpoint = Some(Arc::clone(&endpoint));
            let (attempt, aborted) = req.attempt();
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
                    ctx.service.counters.retries.inc();
                    ctx.tried.push(endpoint.endpoint.addr);
                    drop(sent);
                    drop(load);
                    // Boxed, like the body's reading: a timer is large, and retries are rare.
                    Box::pin(tokio::time::sleep(wait)).await;
                    continue;
                }
                ctx.service.counters.budget_exhausted.inc();
            }
            return match sent {
                Ok(rsp) => {
                    let completion =
                        record::answered(&endpoint, ctx.start, now, rsp.status(), class, load);
                    Ok(body::forwarded(rsp, completion))
                }
                Err(Failed { error, .. }) => Err(error),
            };
        }
    }
}

/// An endpoint for the next attempt, avoiding the ones tried; an error when every endpoint
/// is ejected, or there are none.
fn pick(shared: &Shared, ctx: &Ctx, now: Instant) -> Result<Arc<EndpointState>, ProxyError> {
    let endpoints = ctx.service.endpoints();
    let policy = &ctx.policy.policy.balancer;
    match shared
        .balancer
        .pick(&endpoints.list, &ctx.tried, policy, now)
    {
        Pick::Endpoint(e) => Ok(Arc::clone(e)),
        Pick::AllEjected => Err(ProxyError::CircuitOpen {
            service: ctx.service.name.clone(),
        }),
        Pick::Empty => Err(ProxyError::NoEndpoints {
            service: ctx.service.name.clone(),
        }),
    }
}
