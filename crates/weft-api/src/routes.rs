//! A service's routes on the wire (`weft.destination.v1.Routes`) and back. What comes off
//! the wire is checked as a discovery file's routes are: a message the proxy cannot trust
//! whole is refused whole, and the proxy keeps the routes it had.

use std::time::Duration;

use weft_core::policy::TimeoutOverrides;
use weft_core::route::{Backend, Condition, PathMatch, RouteMatch, RouteRetry, RouteRule, Routes};
use weft_core::ServiceName;

use crate::destination as wire;
use crate::destination::route_match::Path;

/// Why routes from the wire were refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad routes from the control plane: {0}")]
pub struct BadRoutes(pub String);

fn ms(d: Option<Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn duration(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

pub fn routes_to_wire(routes: Option<&Routes>) -> wire::Routes {
    let rules = routes.map(Routes::rules).unwrap_or_default();
    wire::Routes {
        rules: rules.iter().map(rule_to_wire).collect(),
    }
}

fn conditions(c: &[Condition]) -> Vec<wire::Condition> {
    c.iter()
        .map(|c| wire::Condition {
            name: c.name.clone(),
            value: c.value.clone(),
        })
        .collect()
}

fn rule_to_wire(r: &RouteRule) -> wire::RouteRule {
    wire::RouteRule {
        name: r.name.clone(),
        matches: r
            .matches
            .iter()
            .map(|m| wire::RouteMatch {
                path: m.path.as_ref().map(|p| match p {
                    PathMatch::Exact(p) => Path::Exact(p.clone()),
                    PathMatch::Prefix(p) => Path::Prefix(p.clone()),
                }),
                method: m.method.clone().unwrap_or_default(),
                headers: conditions(&m.headers),
                query: conditions(&m.query),
            })
            .collect(),
        backends: r
            .backends
            .iter()
            .map(|b| wire::Backend {
                service: b.service.to_string(),
                weight: b.weight,
            })
            .collect(),
        timeout_ms: ms(r.timeout.total),
        attempt_timeout_ms: ms(r.timeout.per_attempt),
        max_retries: r.retry.max_retries,
        retry_statuses: r.retry.statuses.as_ref().map(|s| wire::RetryStatuses {
            statuses: s.clone(),
        }),
        retry_grpc_codes: r
            .retry
            .grpc_codes
            .as_ref()
            .map(|c| wire::RetryCodes { codes: c.clone() }),
        retry_backoff_ms: ms(r.retry.backoff),
    }
}

/// The routes a message holds: `None` when it holds no rule.
pub fn routes_from_wire(msg: wire::Routes) -> Result<Option<Routes>, BadRoutes> {
    if msg.rules.is_empty() {
        return Ok(None);
    }
    let rules = msg
        .rules
        .into_iter()
        .map(rule_from_wire)
        .collect::<Result<Vec<_>, _>>()?;
    Routes::new(rules).map(Some).map_err(BadRoutes)
}

fn from_conditions(c: Vec<wire::Condition>) -> Vec<Condition> {
    c.into_iter()
        .map(|c| Condition {
            name: c.name,
            value: c.value,
        })
        .collect()
}

fn rule_from_wire(r: wire::RouteRule) -> Result<RouteRule, BadRoutes> {
    let backends = r
        .backends
        .into_iter()
        .map(|b| {
            let valid = !b.service.is_empty()
                && b.service.len() <= 253
                && b.service
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-._".contains(&c));
            if !valid {
                return Err(BadRoutes(format!("backend {:?}", b.service)));
            }
            Ok(Backend {
                service: ServiceName::new(&b.service),
                weight: b.weight,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RouteRule {
        name: r.name,
        matches: r
            .matches
            .into_iter()
            .map(|m| RouteMatch {
                path: m.path.map(|p| match p {
                    Path::Exact(p) => PathMatch::Exact(p),
                    Path::Prefix(p) => PathMatch::Prefix(p),
                }),
                method: (!m.method.is_empty()).then_some(m.method),
                headers: from_conditions(m.headers),
                query: from_conditions(m.query),
            })
            .collect(),
        backends,
        timeout: TimeoutOverrides {
            total: duration(r.timeout_ms),
            per_attempt: duration(r.attempt_timeout_ms),
        },
        retry: RouteRetry {
            max_retries: r.max_retries,
            statuses: r.retry_statuses.map(|s| s.statuses),
            grpc_codes: r.retry_grpc_codes.map(|c| c.codes),
            backoff: duration(r.retry_backoff_ms),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_survive_the_wire_and_bad_ones_are_refused_whole() {
        let rule: RouteRule = toml::from_str(
            r#"
name = "split"
backends = [{ service = "world-v1", weight = 90 }, { service = "world-v2", weight = 10 }]
matches = [{ path = { prefix = "/api" }, method = "GET", headers = [{ name = "x-beta", value = "1" }] }, { path = { exact = "/" }, query = [{ name = "v", value = "2" }] }]
timeout = { total = "2s" }
retry = { max_retries = 1, statuses = ["503"], backoff = "25ms" }
"#,
        )
        .unwrap();
        let routes = Routes::new(vec![rule]).unwrap();
        let back = routes_from_wire(routes_to_wire(Some(&routes)))
            .unwrap()
            .unwrap();
        assert_eq!(back, routes);
        assert_eq!(routes_from_wire(routes_to_wire(None)).unwrap(), None);

        let mut zero = routes_to_wire(Some(&routes));
        zero.rules[0].backends.iter_mut().for_each(|b| b.weight = 0);
        assert!(routes_from_wire(zero).unwrap_err().0.contains("sum to 0"));
        let mut bad_name = routes_to_wire(Some(&routes));
        bad_name.rules[0].backends[0].service = "../etc".into();
        assert!(routes_from_wire(bad_name).is_err());
    }
}
