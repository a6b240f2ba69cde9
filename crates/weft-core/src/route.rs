//! A service's routes: rules that match a request (path, method, headers, query) and send it
//! to weighted backends (other services, such as `world-v1` and `world-v2`), each rule with
//! its own timeouts and retries. The shape is Gateway API's HTTPRoute (as GAMMA applies it
//! to a Service), so a discovery file and a Kubernetes route mean the same thing; rules are
//! tried in Gateway API's order of precedence, whatever order they were written in.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::duration::opt_duration;
use crate::policy::{parse_status_pattern, RetryOverrides, TimeoutOverrides};
use crate::ServiceName;

/// The most rules one service may have, and the most matches, header or query conditions,
/// and backends one rule may have: a request is matched against them all.
pub const MAX_RULES: usize = 64;
pub const MAX_MATCHES: usize = 16;
pub const MAX_CONDITIONS: usize = 16;
pub const MAX_BACKENDS: usize = 16;

/// A service's rules, in order of precedence. Shared, never mutated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routes {
    rules: Vec<RouteRule>,
    /// `(rule, match)` indices, most specific first: how a request finds its rule.
    order: Vec<(usize, usize)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// The `route` metric label: from config, never from requests.
    pub name: String,
    /// Any one of them matches; none at all matches every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RouteMatch>,
    pub backends: Vec<Backend>,
    /// Over the service's own: a route's setting wins.
    #[serde(default, skip_serializing_if = "is_default")]
    pub timeout: TimeoutOverrides,
    #[serde(default, skip_serializing_if = "is_default")]
    pub retry: RouteRetry,
}

/// The retry settings a rule may set (Gateway API's: attempts, codes, backoff); the budget
/// and the body's buffer stay the service's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteRetry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Codes (`503`) or classes (`5xx`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_codes: Option<Vec<u32>>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub backoff: Option<std::time::Duration>,
}

impl RouteRetry {
    pub fn overrides(&self) -> RetryOverrides {
        RetryOverrides {
            max_retries: self.max_retries,
            statuses: self.statuses.clone(),
            grpc_codes: self.grpc_codes.clone(),
            backoff: self.backoff,
            ..Default::default()
        }
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Every condition set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Header name (any case) → exact value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Condition>,
    /// Query parameter → exact value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathMatch {
    Exact(String),
    /// Whole path segments: `/api` matches `/api` and `/api/v1`, not `/apis`.
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub service: ServiceName,
    /// Proportional to the other backends' (0: none of the traffic).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// What a source knows of a service's routes right now.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum RoutesState {
    /// A remote source has not answered yet.
    #[default]
    Pending,
    /// The routes, `None` when the service has none.
    Known(Option<std::sync::Arc<Routes>>),
}

impl RoutesState {
    pub fn routes(&self) -> Option<std::sync::Arc<Routes>> {
        match self {
            Self::Known(r) => r.clone(),
            Self::Pending => None,
        }
    }
}

/// What a request shows a route: borrowed from its head, nothing copied.
pub struct RequestView<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub header: &'a dyn Fn(&str) -> Option<&'a str>,
}

impl Routes {
    /// Checks the rules (the message names the rule) and orders them for matching.
    pub fn new(rules: Vec<RouteRule>) -> Result<Self, String> {
        if rules.len() > MAX_RULES {
            return Err(format!("{} rules: at most {MAX_RULES}", rules.len()));
        }
        for (i, r) in rules.iter().enumerate() {
            r.check().map_err(|e| format!("route {:?}: {e}", r.name))?;
            if rules[..i].iter().any(|o| o.name == r.name) {
                return Err(format!("route {:?} is named twice", r.name));
            }
        }
        let mut order: Vec<(usize, usize)> = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if r.matches.is_empty() {
                order.push((i, usize::MAX));
            }
            order.extend((0..r.matches.len()).map(|m| (i, m)));
        }
        let every = RouteMatch::default();
        let of = |&(r, m): &(usize, usize)| rules[r].matches.get(m).unwrap_or(&every);
        // Stable: equal precedence keeps the order written.
        order.sort_by(|a, b| precedence(of(a), of(b)));
        Ok(Self { rules, order })
    }

    pub fn rules(&self) -> &[RouteRule] {
        &self.rules
    }

    /// The rule that takes a request whatever it holds, if there is one: the first, by
    /// precedence, with a match of no condition but a path prefix of `/` (or no matches at
    /// all). What cannot be matched on (TLS relayed whole) goes there.
    pub fn catch_all(&self) -> Option<usize> {
        let every = RouteMatch::default();
        self.order.iter().find_map(|&(r, m)| {
            let m = self.rules[r].matches.get(m).unwrap_or(&every);
            let any_path = match &m.path {
                None => true,
                Some(PathMatch::Prefix(p)) => p.trim_end_matches('/').is_empty(),
                Some(PathMatch::Exact(_)) => false,
            };
            let whole =
                any_path && m.method.is_none() && m.headers.is_empty() && m.query.is_empty();
            whole.then_some(r)
        })
    }

    /// The index of the first rule, by precedence, that `req` matches.
    pub fn find(&self, req: &RequestView<'_>) -> Option<usize> {
        let every = RouteMatch::default();
        self.order.iter().find_map(|&(r, m)| {
            let rule_match = self.rules[r].matches.get(m).unwrap_or(&every);
            rule_match.matches(req).then_some(r)
        })
    }
}

impl RouteRule {
    /// Checks one rule alone (what [`Routes::new`] checks of each).
    pub fn check(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 253
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err("a route's name is 1 to 253 letters, digits, '-', '_' or '.'".into());
        }
        if self.matches.len() > MAX_MATCHES {
            return Err(format!("at most {MAX_MATCHES} matches"));
        }
        for m in &self.matches {
            m.check()?;
        }
        if self.backends.is_empty() || self.backends.len() > MAX_BACKENDS {
            return Err(format!("1 to {MAX_BACKENDS} backends"));
        }
        if self
            .backends
            .iter()
            .map(|b| u64::from(b.weight))
            .sum::<u64>()
            == 0
        {
            return Err("backend weights sum to 0: no backend would get a request".into());
        }
        for (i, b) in self.backends.iter().enumerate() {
            if self.backends[..i].iter().any(|o| o.service == b.service) {
                return Err(format!("backend {} is listed twice", b.service));
            }
        }
        for s in self.retry.statuses.iter().flatten() {
            if parse_status_pattern(s).is_none() {
                return Err(format!(
                    "retry.statuses: {s:?} is neither a status (503) nor a class (5xx)"
                ));
            }
        }
        if let Some(c) = self.retry.grpc_codes.iter().flatten().find(|c| **c > 16) {
            return Err(format!(
                "retry.grpc_codes: {c} is no gRPC status code (0 to 16)"
            ));
        }
        if self.retry.max_retries.is_some_and(|n| n > 10) {
            return Err("retry.max_retries: at most 10".into());
        }
        let too_long =
            |d: Option<std::time::Duration>| d.is_some_and(|d| d > crate::policy::MAX_DURATION);
        if too_long(self.timeout.total)
            || too_long(self.timeout.per_attempt)
            || too_long(self.retry.backoff)
        {
            return Err("a timeout or backoff is at most 24h".into());
        }
        Ok(())
    }
}

impl RouteMatch {
    fn check(&self) -> Result<(), String> {
        match &self.path {
            Some(PathMatch::Exact(p) | PathMatch::Prefix(p)) if !p.starts_with('/') => {
                return Err(format!("path {p:?} does not start with '/'"));
            }
            Some(PathMatch::Exact(p) | PathMatch::Prefix(p))
                if p.bytes()
                    .any(|b| b.is_ascii_control() || b == b' ' || b == b'?') =>
            {
                return Err(format!("path {p:?} holds a character no request path has"));
            }
            _ => {}
        }
        if let Some(m) = &self.method {
            let token = !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase());
            if !token {
                return Err(format!("method {m:?} is not an upper-case HTTP method"));
            }
        }
        if self.headers.len() > MAX_CONDITIONS || self.query.len() > MAX_CONDITIONS {
            return Err(format!(
                "at most {MAX_CONDITIONS} header and query conditions"
            ));
        }
        for h in &self.headers {
            let name_ok = !h.name.is_empty()
                && h.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b));
            if !name_ok {
                return Err(format!("{:?} is not a header name", h.name));
            }
        }
        Ok(())
    }

    fn matches(&self, req: &RequestView<'_>) -> bool {
        let path_ok = match &self.path {
            None => true,
            Some(PathMatch::Exact(p)) => req.path == p,
            Some(PathMatch::Prefix(p)) => prefix_matches(p, req.path),
        };
        path_ok
            && self.method.as_deref().is_none_or(|m| m == req.method)
            && self
                .headers
                .iter()
                .all(|c| (req.header)(&c.name) == Some(c.value.as_str()))
            && self
                .query
                .iter()
                .all(|c| query_param(req.query, &c.name) == Some(c.value.as_str()))
    }
}

/// Gateway API's prefix: whole segments, a trailing `/` in the prefix ignored.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The first value of `name` in a query string, undecoded (as Gateway API compares them).
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// Gateway API's order: an exact path before a prefix, a longer prefix before a shorter,
/// then a method before none, then more header conditions, then more query conditions.
fn precedence(a: &RouteMatch, b: &RouteMatch) -> Ordering {
    let path_rank = |m: &RouteMatch| match &m.path {
        Some(PathMatch::Exact(p)) => (2, p.len()),
        Some(PathMatch::Prefix(p)) => (1, p.trim_end_matches('/').len()),
        None => (1, 0),
    };
    path_rank(b)
        .cmp(&path_rank(a))
        .then(b.method.is_some().cmp(&a.method.is_some()))
        .then(b.headers.len().cmp(&a.headers.len()))
        .then(b.query.len().cmp(&a.query.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, matches: Vec<RouteMatch>) -> RouteRule {
        RouteRule {
            name: name.into(),
            matches,
            backends: vec![Backend {
                service: ServiceName::new("b"),
                weight: 1,
            }],
            timeout: Default::default(),
            retry: Default::default(),
        }
    }

    fn path(p: PathMatch) -> RouteMatch {
        RouteMatch {
            path: Some(p),
            ..Default::default()
        }
    }

    fn find(
        routes: &Routes,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Option<String> {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let header = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| *v)
        };
        let view = RequestView {
            method,
            path,
            query,
            header: &header,
        };
        routes.find(&view).map(|i| routes.rules()[i].name.clone())
    }

    #[test]
    fn the_most_specific_match_wins_whatever_the_order() {
        let routes = Routes::new(vec![
            rule("all", vec![]),
            rule("api", vec![path(PathMatch::Prefix("/api/".into()))]),
            rule("health", vec![path(PathMatch::Exact("/api/health".into()))]),
            rule(
                "beta",
                vec![RouteMatch {
                    path: Some(PathMatch::Prefix("/api".into())),
                    headers: vec![Condition {
                        name: "x-beta".into(),
                        value: "1".into(),
                    }],
                    ..Default::default()
                }],
            ),
            rule(
                "post",
                vec![RouteMatch {
                    method: Some("POST".into()),
                    query: vec![Condition {
                        name: "v".into(),
                        value: "2".into(),
                    }],
                    ..Default::default()
                }],
            ),
        ])
        .unwrap();
        let got = |m, t, h| find(&routes, m, t, h);
        assert_eq!(
            got("GET", "/api/health", &[("X-Beta", "1")]).as_deref(),
            Some("health")
        );
        assert_eq!(
            got("GET", "/api/x", &[("X-Beta", "1")]).as_deref(),
            Some("beta")
        );
        assert_eq!(got("GET", "/api", &[]).as_deref(), Some("api"));
        assert_eq!(got("GET", "/apis", &[]).as_deref(), Some("all"));
        assert_eq!(got("POST", "/x?a=1&v=2", &[]).as_deref(), Some("post"));
        assert_eq!(got("POST", "/x?v=3", &[]).as_deref(), Some("all"));
    }

    #[test]
    fn a_service_without_a_catch_all_matches_nothing_else() {
        let routes = Routes::new(vec![rule(
            "api",
            vec![path(PathMatch::Prefix("/api".into()))],
        )])
        .unwrap();
        assert_eq!(find(&routes, "GET", "/other", &[]), None);
    }

    #[test]
    fn bad_rules_are_refused_with_their_name() {
        let mut zero = rule("zero", vec![]);
        zero.backends[0].weight = 0;
        let err = Routes::new(vec![zero]).unwrap_err();
        assert!(
            err.contains("\"zero\"") && err.contains("sum to 0"),
            "{err}"
        );
        let relative = rule("rel", vec![path(PathMatch::Exact("api".into()))]);
        assert!(Routes::new(vec![relative])
            .unwrap_err()
            .contains("start with '/'"));
        let twice = vec![rule("a", vec![]), rule("a", vec![])];
        assert!(Routes::new(twice).unwrap_err().contains("named twice"));
        let mut method = rule("m", vec![RouteMatch::default()]);
        method.matches[0].method = Some("get me".into());
        assert!(Routes::new(vec![method]).is_err());
    }
}
