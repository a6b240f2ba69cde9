//! Gateway API routes as GAMMA applies them to a mesh: an `HTTPRoute` or `GRPCRoute` whose
//! parent is a Service sends that Service's requests to weighted backend Services. Each
//! route is read into weft's route model, refused whole with a reason when it uses what weft
//! does not support (filters, regular expressions, consumer routes, backends in another
//! namespace), and the last rules it had accepted stay in force then. Its verdict goes back
//! as the route's status, one entry per Service parent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use weft_core::policy::TimeoutOverrides;
use weft_core::route::{Backend, Condition, PathMatch, RouteMatch, RouteRetry, RouteRule, Routes};
use weft_core::ServiceName;

use crate::cluster::{Key, ServiceRecord};

/// What weft writes as `controllerName` in the routes' status.
pub const CONTROLLER_NAME: &str = "weft.io/mesh";
pub const GROUP: &str = "gateway.networking.k8s.io";
pub const VERSION: &str = "v1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    Http,
    Grpc,
}

impl RouteKind {
    pub fn kind(self) -> &'static str {
        match self {
            Self::Http => "HTTPRoute",
            Self::Grpc => "GRPCRoute",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Self::Http => "httproutes",
            Self::Grpc => "grpcroutes",
        }
    }
}

/// One route object as read: the Services it attaches to, and its rules or why they were
/// refused.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteObject {
    pub generation: i64,
    /// `(creationTimestamp, namespace, name)`: Gateway API's order among routes.
    pub order: (String, String, String),
    pub parents: Vec<ParentRef>,
    pub rules: Result<Vec<RouteRule>, String>,
    /// The backend Services its rules name, for `ResolvedRefs`.
    pub backends: Vec<Key>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
}

impl ParentRef {
    fn is_service(&self) -> bool {
        matches!(self.group.as_deref(), None | Some("") | Some("core"))
            && self.kind.as_deref() == Some("Service")
    }
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    parent_refs: Vec<ParentRef>,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    matches: Vec<Value>,
    #[serde(default)]
    filters: Vec<Value>,
    #[serde(default)]
    backend_refs: Vec<BackendRef>,
    #[serde(default)]
    timeouts: Option<Timeouts>,
    #[serde(default)]
    retry: Option<Retry>,
    #[serde(default)]
    session_persistence: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpMatch {
    #[serde(default)]
    path: Option<Typed>,
    #[serde(default)]
    headers: Vec<Typed>,
    #[serde(default)]
    query_params: Vec<Typed>,
    #[serde(default)]
    method: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrpcMatch {
    #[serde(default)]
    method: Option<GrpcMethod>,
    #[serde(default)]
    headers: Vec<Typed>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrpcMethod {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    method: Option<String>,
}

/// A path, header or query match: `type` (default `Exact`, `PathPrefix` for a path), name
/// (not for a path) and value.
#[derive(Deserialize)]
struct Typed {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BackendRef {
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    filters: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Timeouts {
    #[serde(default)]
    request: Option<String>,
    #[serde(default)]
    backend_request: Option<String>,
}

#[derive(Deserialize)]
struct Retry {
    #[serde(default)]
    codes: Option<Vec<u16>>,
    #[serde(default)]
    attempts: Option<u32>,
    #[serde(default)]
    backoff: Option<String>,
}

/// Reads one route object (`data` is its JSON), or `None` when it names no Service as a
/// parent: then it is some gateway's, not the mesh's.
pub fn read(
    kind: RouteKind,
    key: &Key,
    meta: &MetaView,
    data: &Value,
    default_namespace: &str,
) -> Option<RouteObject> {
    let spec: Result<Spec, _> = serde_json::from_value(data["spec"].clone());
    let (parents, rules, backends) = match spec {
        Ok(spec) => {
            let parents: Vec<ParentRef> = spec
                .parent_refs
                .into_iter()
                .filter(ParentRef::is_service)
                .collect();
            if parents.is_empty() {
                return None;
            }
            let mut backends = Vec::new();
            let rules = rules(
                kind,
                key,
                &parents,
                spec.rules,
                &mut backends,
                default_namespace,
            );
            (parents, rules, backends)
        }
        Err(e) => {
            // Unreadable as a whole: its parents are still read, so the refusal is reported.
            let parents: Vec<ParentRef> = data["spec"]["parentRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| serde_json::from_value::<ParentRef>(p.clone()).ok())
                .filter(ParentRef::is_service)
                .collect();
            if parents.is_empty() {
                return None;
            }
            (parents, Err(format!("spec: {e}")), Vec::new())
        }
    };
    Some(RouteObject {
        generation: meta.generation,
        order: (
            meta.created.clone(),
            key.namespace.clone(),
            key.name.clone(),
        ),
        parents,
        rules,
        backends,
    })
}

/// The little of an object's metadata a route's reading needs.
pub struct MetaView {
    pub generation: i64,
    pub created: String,
}

fn rules(
    kind: RouteKind,
    key: &Key,
    parents: &[ParentRef],
    rules: Vec<Rule>,
    backends: &mut Vec<Key>,
    default_namespace: &str,
) -> Result<Vec<RouteRule>, String> {
    if let Some(p) = parents
        .iter()
        .find(|p| p.namespace.as_deref().is_some_and(|ns| ns != key.namespace))
    {
        return Err(format!(
            "parent Service {}/{} is in another namespace: consumer routes are not supported; put the route in the Service's namespace",
            p.namespace.as_deref().unwrap_or_default(),
            p.name
        ));
    }
    if rules.is_empty() {
        return Err("a route needs at least one rule".into());
    }
    let many = rules.len() > 1;
    rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let name = rule_name(&key.name, r.name.as_deref(), i, many);
            rule(kind, key, &name, r, backends, default_namespace)
                .map_err(|e| format!("rule {i}: {e}"))
        })
        .collect()
}

/// A rule's name as the proxies' metrics show it: the route's name, and the rule's own name
/// (or its place) when the route has several.
pub fn rule_name(route: &str, rule: Option<&str>, i: usize, many: bool) -> String {
    match (rule, many) {
        (Some(n), _) => format!("{route}.{n}"),
        (None, true) => format!("{route}.{i}"),
        (None, false) => route.to_string(),
    }
}

fn rule(
    kind: RouteKind,
    key: &Key,
    name: &str,
    r: Rule,
    backends: &mut Vec<Key>,
    default_namespace: &str,
) -> Result<RouteRule, String> {
    if !r.filters.is_empty() {
        return Err("filters are not supported".into());
    }
    if r.session_persistence.is_some() {
        return Err("sessionPersistence is not supported".into());
    }
    let matches = r
        .matches
        .into_iter()
        .map(|m| match kind {
            RouteKind::Http => http_match(m),
            RouteKind::Grpc => grpc_match(m),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut refs = Vec::new();
    for b in r.backend_refs {
        let service = matches!(b.group.as_deref(), None | Some("") | Some("core"))
            && matches!(b.kind.as_deref(), None | Some("Service"));
        if !service {
            return Err(format!("backend {:?} is not a Service", b.name));
        }
        if b.namespace.as_deref().is_some_and(|ns| ns != key.namespace) {
            return Err(format!(
                "backend {:?} is in another namespace: not supported",
                b.name
            ));
        }
        if !b.filters.is_empty() {
            return Err("backend filters are not supported".into());
        }
        backends.push(Key::new(&key.namespace, &b.name));
        refs.push(Backend {
            service: backend_name(&key.namespace, &b.name, default_namespace),
            weight: b.weight.unwrap_or(1),
        });
    }
    let timeouts = r.timeouts.unwrap_or(Timeouts {
        request: None,
        backend_request: None,
    });
    let retry = match r.retry {
        Some(rt) => RouteRetry {
            max_retries: rt.attempts,
            statuses: rt.codes.map(|c| c.iter().map(u16::to_string).collect()),
            grpc_codes: None,
            backoff: rt.backoff.as_deref().map(duration).transpose()?,
        },
        None => RouteRetry::default(),
    };
    let rule = RouteRule {
        name: name.to_string(),
        matches,
        backends: refs,
        timeout: TimeoutOverrides {
            total: timeouts.request.as_deref().map(duration).transpose()?,
            per_attempt: timeouts
                .backend_request
                .as_deref()
                .map(duration)
                .transpose()?,
        },
        retry,
    };
    rule.check()?;
    Ok(rule)
}

/// A backend in the control plane's default namespace goes by its bare name, as apps there
/// call it; others by `name.namespace`.
fn backend_name(namespace: &str, name: &str, default_namespace: &str) -> ServiceName {
    if namespace == default_namespace {
        ServiceName::new(name)
    } else {
        ServiceName::new(&format!("{name}.{namespace}"))
    }
}

fn exact(t: &Typed, what: &str) -> Result<(String, String), String> {
    match t.kind.as_deref() {
        None | Some("Exact") => {}
        Some(other) => return Err(format!("{what} match type {other} is not supported")),
    }
    let name = t
        .name
        .clone()
        .ok_or_else(|| format!("a {what} match has no name"))?;
    Ok((name, t.value.clone().unwrap_or_default()))
}

fn conditions(list: &[Typed], what: &str) -> Result<Vec<Condition>, String> {
    list.iter()
        .map(|t| exact(t, what).map(|(name, value)| Condition { name, value }))
        .collect()
}

fn http_match(v: Value) -> Result<RouteMatch, String> {
    let m: HttpMatch = serde_json::from_value(v).map_err(|e| format!("match: {e}"))?;
    let path = match m.path {
        None => None,
        Some(p) => {
            let value = p.value.unwrap_or_else(|| "/".into());
            match p.kind.as_deref() {
                None | Some("PathPrefix") => Some(PathMatch::Prefix(value)),
                Some("Exact") => Some(PathMatch::Exact(value)),
                Some(other) => return Err(format!("path match type {other} is not supported")),
            }
        }
    };
    Ok(RouteMatch {
        path,
        method: m.method,
        headers: conditions(&m.headers, "header")?,
        query: conditions(&m.query_params, "query")?,
    })
}

/// A gRPC method match is a path match: `/SERVICE/METHOD` exactly, or `/SERVICE/` as a
/// prefix for every method of a service.
fn grpc_match(v: Value) -> Result<RouteMatch, String> {
    let m: GrpcMatch = serde_json::from_value(v).map_err(|e| format!("match: {e}"))?;
    let path = match m.method {
        None => None,
        Some(gm) => {
            if !matches!(gm.kind.as_deref(), None | Some("Exact")) {
                return Err("gRPC method match types other than Exact are not supported".into());
            }
            match (gm.service, gm.method) {
                (Some(s), Some(m)) => Some(PathMatch::Exact(format!("/{s}/{m}"))),
                (Some(s), None) => Some(PathMatch::Prefix(format!("/{s}"))),
                (None, Some(_)) => {
                    return Err("a gRPC method match without its service is not supported".into())
                }
                (None, None) => None,
            }
        }
    };
    Ok(RouteMatch {
        path,
        method: None,
        headers: conditions(&m.headers, "header")?,
        query: Vec::new(),
    })
}

/// Gateway API's duration: `1h`, `30s`, `500ms`, or several (`1m30s`).
pub fn duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("duration {s:?} is not Gateway API's form (1h, 30s, 500ms, 1m30s)");
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else {
            return Err(bad());
        };
        total += unit * u32::try_from(n).map_err(|_| bad())?;
        rest = &rest[len..];
    }
    Ok(total)
}

/// What a route had accepted last: the Services it was attached to then, and its rules. A
/// refused edit leaves both in force, so it can neither move a split to another Service
/// nor take it from the one it had.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted {
    pub parents: Vec<String>,
    pub rules: Vec<RouteRule>,
}

impl Accepted {
    /// What `object` would have in force, if its rules were accepted.
    pub fn of(object: &RouteObject) -> Option<Self> {
        let rules = object.rules.as_ref().ok()?;
        let mut parents: Vec<String> = object.parents.iter().map(|p| p.name.clone()).collect();
        // A Service named twice (once per port, say) takes the rules once.
        parents.sort();
        parents.dedup();
        Some(Self {
            parents,
            rules: rules.clone(),
        })
    }
}

/// Each Service's routes: the rules in force of every route attached to it (routes in
/// Gateway API's order, then their rules by precedence). A Service whose routes do not fit
/// together (rules named twice, too many) keeps the routes it had (`previous`), and the
/// reason is returned for its routes' status.
pub fn by_service(
    mut ordered: Vec<((RouteKind, &Key), &RouteObject)>,
    in_force: &HashMap<(RouteKind, Key), Accepted>,
    previous: &HashMap<Key, Arc<Routes>>,
) -> (HashMap<Key, Arc<Routes>>, HashMap<Key, String>) {
    ordered.sort_by(|a, b| a.1.order.cmp(&b.1.order).then(a.0.cmp(&b.0)));
    let mut rules: HashMap<Key, Vec<RouteRule>> = HashMap::new();
    for ((kind, key), _) in ordered {
        let Some(accepted) = in_force.get(&(kind, key.clone())) else {
            continue;
        };
        for parent in &accepted.parents {
            let parent = Key::new(&key.namespace, parent);
            rules
                .entry(parent)
                .or_default()
                .extend(accepted.rules.iter().cloned());
        }
    }
    let mut routes = HashMap::new();
    let mut conflicts = HashMap::new();
    for (key, rules) in rules {
        match Routes::new(rules) {
            Ok(r) => {
                routes.insert(key, Arc::new(r));
            }
            Err(e) => {
                tracing::warn!(service = %key, error = %e, "the routes attached to this service do not fit together; its last routes stay");
                if let Some(r) = previous.get(&key) {
                    routes.insert(key.clone(), Arc::clone(r));
                }
                conflicts.insert(key, e);
            }
        }
    }
    (routes, conflicts)
}

/// The status weft reports for a route: per Service parent, `Accepted` (its rules read, or
/// why not) and `ResolvedRefs` (every backend Service exists).
pub fn status(
    id: &(RouteKind, Key),
    object: &RouteObject,
    kept: bool,
    conflict: Option<&str>,
    services: &HashMap<Key, ServiceRecord>,
    now: &str,
) -> Value {
    let generation = object.generation;
    let condition = |kind: &str, ok: bool, reason: &str, message: String| {
        json!({
            "type": kind,
            "status": if ok { "True" } else { "False" },
            "reason": reason,
            "message": message,
            "observedGeneration": generation,
            "lastTransitionTime": now,
        })
    };
    let accepted = match &object.rules {
        Ok(_) if conflict.is_some() => condition(
            "Accepted",
            false,
            "UnsupportedValue",
            format!(
                "with the other routes of its Service: {}; the Service's last routes stay in force",
                conflict.unwrap_or_default()
            ),
        ),
        Ok(_) => condition("Accepted", true, "Accepted", "weft routes it".into()),
        Err(e) => {
            let kept = if kept {
                "; the rules accepted before stay in force"
            } else {
                ""
            };
            condition("Accepted", false, "UnsupportedValue", format!("{e}{kept}"))
        }
    };
    let missing: Vec<String> = object
        .backends
        .iter()
        .filter(|b| !services.contains_key(b))
        .map(|b| b.name.clone())
        .collect();
    let resolved = if missing.is_empty() {
        condition(
            "ResolvedRefs",
            true,
            "ResolvedRefs",
            "every backend exists".into(),
        )
    } else {
        condition(
            "ResolvedRefs",
            false,
            "BackendNotFound",
            format!(
                "no Service {} in {}: its share goes to the other backends",
                missing.join(", "),
                id.1.namespace
            ),
        )
    };
    let parents: Vec<Value> = object
        .parents
        .iter()
        .map(|p| {
            let mut parent = json!({"group": "", "kind": "Service", "name": p.name});
            if let Some(port) = p.port {
                parent["port"] = json!(port);
            }
            json!({
                "parentRef": parent,
                "controllerName": CONTROLLER_NAME,
                "conditions": [accepted.clone(), resolved.clone()],
            })
        })
        .collect();
    json!({ "status": { "parents": parents } })
}

/// A status with its times left out, to tell whether anything but the time changed.
pub fn without_times(status: &Value) -> Value {
    let mut s = status.clone();
    for p in s["status"]["parents"].as_array_mut().into_iter().flatten() {
        for c in p["conditions"].as_array_mut().into_iter().flatten() {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastTransitionTime");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: RouteKind, spec: Value) -> Option<RouteObject> {
        let meta = MetaView {
            generation: 1,
            created: "2026-12-02T00:00:00Z".into(),
        };
        let data = json!({ "spec": spec });
        read(
            kind,
            &Key::new("default", "world-split"),
            &meta,
            &data,
            "default",
        )
    }

    #[test]
    fn an_httproute_on_a_service_reads_into_rules() {
        let o = object(
            RouteKind::Http,
            json!({
                "parentRefs": [{"group": "", "kind": "Service", "name": "world", "port": 80}],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": "/api"}, "method": "GET",
                                 "headers": [{"name": "x-beta", "value": "1"}]}],
                    "backendRefs": [{"name": "world-v1", "port": 80, "weight": 90},
                                    {"name": "world-v2", "port": 80, "weight": 10}],
                    "timeouts": {"request": "1m30s", "backendRequest": "500ms"},
                    "retry": {"attempts": 2, "codes": [503], "backoff": "100ms"}
                }]
            }),
        )
        .unwrap();
        let rules = o.rules.unwrap();
        assert_eq!(rules[0].name, "world-split");
        assert_eq!(rules[0].backends[1].weight, 10);
        assert_eq!(rules[0].timeout.total, Some(Duration::from_secs(90)));
        assert_eq!(
            rules[0].retry.statuses.as_deref(),
            Some(&["503".to_string()][..])
        );
        assert_eq!(o.backends.len(), 2);
    }

    #[test]
    fn a_grpcroute_matches_by_method() {
        let o = object(
            RouteKind::Grpc,
            json!({
                "parentRefs": [{"kind": "Service", "name": "world"}],
                "rules": [{"matches": [{"method": {"service": "demo.Greeter", "method": "Greet"}}],
                           "backendRefs": [{"name": "world-v2"}]}]
            }),
        )
        .unwrap();
        let rules = o.rules.unwrap();
        assert_eq!(
            rules[0].matches[0].path,
            Some(PathMatch::Exact("/demo.Greeter/Greet".into()))
        );
    }

    #[test]
    fn what_weft_cannot_honour_is_refused_with_a_reason() {
        let refused = |rule: Value| {
            object(
                RouteKind::Http,
                json!({"parentRefs": [{"kind": "Service", "name": "world"}], "rules": [rule]}),
            )
            .unwrap()
            .rules
            .unwrap_err()
        };
        let filter = refused(json!({"filters": [{"type": "RequestHeaderModifier"}],
                                    "backendRefs": [{"name": "v1"}]}));
        assert!(filter.contains("filters are not supported"), "{filter}");
        let regex = refused(
            json!({"matches": [{"path": {"type": "RegularExpression", "value": "/a.*"}}],
                                   "backendRefs": [{"name": "v1"}]}),
        );
        assert!(regex.contains("RegularExpression"), "{regex}");
        let zero = refused(json!({"backendRefs": [{"name": "v1", "weight": 0}]}));
        assert!(zero.contains("sum to 0"), "{zero}");
        // A gateway's route is not the mesh's.
        assert!(object(
            RouteKind::Http,
            json!({"parentRefs": [{"kind": "Gateway", "name": "edge"}], "rules": []})
        )
        .is_none());
    }

    #[test]
    fn gateway_durations() {
        assert_eq!(duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(duration("1.5s").is_err() && duration("").is_err() && duration("10").is_err());
    }
}
