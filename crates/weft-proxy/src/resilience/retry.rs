//! The retry verdict: whether an attempt's answer is worth another attempt, and how long to
//! wait before it. The budget, shared by every request to a service, is asked only after a
//! yes here, so a request that would not retry spends none of it.

use std::time::{Duration, Instant};

use http::{HeaderMap, Method, StatusCode};

use super::policy::Compiled;
use crate::error::ProxyError;

/// What an attempt came back with, as the verdict reads it.
#[derive(Clone, Copy)]
pub(crate) enum Answer<'a> {
    Response(StatusCode, &'a HeaderMap),
    Error(&'a ProxyError),
}

/// Where the request stands after an attempt.
#[derive(Clone, Copy)]
pub(crate) struct Standing {
    /// Attempts made beyond the first so far.
    pub retries: u32,
    /// Whether the request can be sent again (its body kept whole, or never sent).
    pub can_resend: bool,
    /// The request's deadline, if it has one.
    pub deadline: Option<Instant>,
    pub now: Instant,
}

/// Whether to try again: the policy allows another attempt, the answer is one it retries
/// for this method, the request can go again, and more than a moment is left.
pub(crate) fn worth_retrying(
    policy: &Compiled,
    method: &Method,
    answer: Answer<'_>,
    standing: Standing,
) -> bool {
    if standing.retries >= policy.policy.retry.max_retries || !standing.can_resend {
        return false;
    }
    let time_left = standing
        .deadline
        .is_none_or(|at| at > standing.now + Duration::from_millis(1));
    time_left
        && match answer {
            // A loop goes round again if sent again: every hop's retries would multiply.
            Answer::Response(status, _) if status == StatusCode::LOOP_DETECTED => false,
            Answer::Response(status, headers) => policy.retryable_response(method, status, headers),
            Answer::Error(e) => policy.retryable_error(method, e),
        }
}

/// Full jitter over an exponential backoff: retry 1 waits up to `base`, then 2×, 4× …, never
/// more than `max`.
pub(crate) fn backoff(retry: u32, base: Duration, max: Duration) -> Duration {
    let ceiling = base
        .saturating_mul(1 << retry.saturating_sub(1).min(16))
        .min(max);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use http::HeaderValue;
    use weft_core::policy::Policy;
    use weft_http::Error as Upstream;

    use super::*;

    fn policy(max_retries: u32) -> Compiled {
        let mut p = Policy::default();
        p.retry.max_retries = max_retries;
        Compiled::new(p)
    }

    fn standing(retries: u32) -> Standing {
        Standing {
            retries,
            can_resend: true,
            deadline: None,
            now: Instant::now(),
        }
    }

    const ENDPOINT: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);

    #[test]
    fn a_request_that_never_left_is_retried_whatever_its_method() {
        let refused = ProxyError::Upstream(Upstream::ConnectRefused { endpoint: ENDPOINT });
        let p = policy(2);
        for method in [Method::GET, Method::POST, Method::PATCH] {
            assert!(worth_retrying(
                &p,
                &method,
                Answer::Error(&refused),
                standing(0)
            ));
        }
    }

    #[test]
    fn a_broken_exchange_is_retried_only_for_methods_that_may_be_sent_twice() {
        let reset = ProxyError::Upstream(Upstream::Reset {
            endpoint: ENDPOINT,
            cause: "gone".into(),
        });
        let p = policy(2);
        assert!(worth_retrying(
            &p,
            &Method::GET,
            Answer::Error(&reset),
            standing(0)
        ));
        assert!(!worth_retrying(
            &p,
            &Method::POST,
            Answer::Error(&reset),
            standing(0)
        ));
        let timeout = ProxyError::AttemptTimeout {
            endpoint: ENDPOINT,
            timeout: Duration::from_millis(5),
        };
        assert!(!worth_retrying(
            &p,
            &Method::POST,
            Answer::Error(&timeout),
            standing(0)
        ));
        // An error the proxy or the client made is never worth another attempt.
        assert!(!worth_retrying(
            &p,
            &Method::GET,
            Answer::Error(&ProxyError::ClientAborted),
            standing(0)
        ));
    }

    #[test]
    fn statuses_follow_the_policy_and_grpc_codes_whatever_the_method() {
        let p = policy(2);
        let none = HeaderMap::new();
        let bad_gateway = Answer::Response(StatusCode::BAD_GATEWAY, &none);
        assert!(worth_retrying(&p, &Method::GET, bad_gateway, standing(0)));
        assert!(!worth_retrying(&p, &Method::POST, bad_gateway, standing(0)));
        let not_found = Answer::Response(StatusCode::NOT_FOUND, &none);
        assert!(!worth_retrying(&p, &Method::GET, not_found, standing(0)));
        let mut unavailable = HeaderMap::new();
        unavailable.insert("grpc-status", HeaderValue::from_static("14"));
        let grpc = Answer::Response(StatusCode::OK, &unavailable);
        assert!(worth_retrying(&p, &Method::POST, grpc, standing(0)));
        let mut invalid = HeaderMap::new();
        invalid.insert("grpc-status", HeaderValue::from_static("3"));
        let grpc = Answer::Response(StatusCode::OK, &invalid);
        assert!(!worth_retrying(&p, &Method::POST, grpc, standing(0)));
        // A peer proxy's refusal before any app saw the request: safe for any method.
        let mut refused = HeaderMap::new();
        refused.insert(
            "weft-error",
            HeaderValue::from_static("endpoint not on this node"),
        );
        let peer = Answer::Response(StatusCode::FORBIDDEN, &refused);
        assert!(worth_retrying(&p, &Method::POST, peer, standing(0)));
    }

    #[test]
    fn no_retry_past_the_limit_without_the_body_or_without_time() {
        let refused = ProxyError::Upstream(Upstream::ConnectRefused { endpoint: ENDPOINT });
        let answer = Answer::Error(&refused);
        assert!(!worth_retrying(
            &policy(0),
            &Method::GET,
            answer,
            standing(0)
        ));
        assert!(worth_retrying(
            &policy(2),
            &Method::GET,
            answer,
            standing(1)
        ));
        assert!(!worth_retrying(
            &policy(2),
            &Method::GET,
            answer,
            standing(2)
        ));
        let spent = Standing {
            can_resend: false,
            ..standing(0)
        };
        assert!(!worth_retrying(&policy(2), &Method::GET, answer, spent));
        let now = Instant::now();
        let due = Standing {
            deadline: Some(now),
            now,
            ..standing(0)
        };
        assert!(!worth_retrying(&policy(2), &Method::GET, answer, due));
        let later = Standing {
            deadline: Some(now + Duration::from_secs(1)),
            now,
            ..standing(0)
        };
        assert!(worth_retrying(&policy(2), &Method::GET, answer, later));
    }

    #[test]
    fn backoff_grows_within_its_ceiling() {
        let (base, max) = (Duration::from_millis(10), Duration::from_millis(50));
        for _ in 0..200 {
            assert!(backoff(1, base, max) <= base);
            assert!(backoff(2, base, max) <= base * 2);
            assert!(backoff(9, base, max) <= max);
            assert!(backoff(u32::MAX, base, max) <= max);
        }
    }
}
