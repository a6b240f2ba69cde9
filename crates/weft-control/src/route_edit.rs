//! A Service's HTTPRoute weights on Kubernetes, read and changed, for `weft shift`: the
//! rules of the route that send to the canary get new `backendRefs` weights, written as one
//! merge patch of the route's spec that names the version it was read at, so a change
//! someone made in between is not overwritten (the API server answers 409 instead).

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};

use crate::gateway::RouteKind;
use crate::kube_watch::route_resource;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RouteEditError(pub String);

/// One rule's backends and their weights, by backend Service name.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleWeights {
    /// `ROUTE` or `ROUTE.RULE`, as the proxies' metrics name it.
    pub rule: String,
    pub weights: Vec<(String, u32)>,
}

pub struct KubeRoute {
    api: Api<DynamicObject>,
    pub name: String,
    canary: String,
}

fn err(e: impl std::fmt::Display) -> RouteEditError {
    RouteEditError(e.to_string())
}

impl KubeRoute {
    /// The HTTPRoute in `namespace` whose parent is `service` and which sends to `canary`
    /// (only the one named `route`, when given).
    pub async fn find(
        client: kube::Client,
        namespace: &str,
        service: &str,
        canary: &str,
        route: Option<&str>,
    ) -> Result<Self, RouteEditError> {
        let api = Api::<DynamicObject>::namespaced_with(
            client,
            namespace,
            &route_resource(RouteKind::Http),
        );
        let list = api.list(&Default::default()).await.map_err(err)?;
        let found = list.items.into_iter().find(|r| {
            let named = route.is_none_or(|n| r.metadata.name.as_deref() == Some(n));
            let spec = &r.data["spec"];
            let parent = spec["parentRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["kind"] == "Service" && p["name"] == service);
            named && parent && !rules_with(spec, canary).is_empty()
        });
        let Some(found) = found else {
            return Err(RouteEditError(format!(
                "no HTTPRoute in {namespace} has the Service {service} as its parent and {canary} as a backend{}",
                route.map(|r| format!(" (looked for {r:?})")).unwrap_or_default()
            )));
        };
        Ok(Self {
            api,
            name: found.metadata.name.unwrap_or_default(),
            canary: canary.to_string(),
        })
    }

    pub async fn get(&self) -> Result<Vec<RuleWeights>, RouteEditError> {
        let route = self.api.get(&self.name).await.map_err(err)?;
        let spec = &route.data["spec"];
        let many = spec["rules"].as_array().map_or(0, Vec::len) > 1;
        Ok(rules_with(spec, &self.canary)
            .into_iter()
            .map(|(i, rule)| RuleWeights {
                rule: rule_name(&self.name, rule, i, many),
                weights: rule["backendRefs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|b| {
                        let name = b["name"].as_str().unwrap_or_default().to_string();
                        (name, b["weight"].as_u64().map_or(1, |w| w as u32))
                    })
                    .collect(),
            })
            .collect())
    }

    pub async fn set(&self, wanted: &[RuleWeights]) -> Result<(), RouteEditError> {
        let route = self.api.get(&self.name).await.map_err(err)?;
        let mut spec = route.data["spec"].clone();
        let many = spec["rules"].as_array().map_or(0, Vec::len) > 1;
        let name = self.name.clone();
        for (i, rule) in spec["rules"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let id = rule_name(&name, rule, i, many);
            let Some(w) = wanted.iter().find(|w| w.rule == id) else {
                continue;
            };
            for b in rule["backendRefs"].as_array_mut().into_iter().flatten() {
                let backend = b["name"].as_str().unwrap_or_default().to_string();
                if let Some((_, weight)) = w.weights.iter().find(|(n, _)| *n == backend) {
                    b["weight"] = json!(weight);
                }
            }
        }
        let patch = json!({
            "metadata": { "resourceVersion": route.metadata.resource_version },
            "spec": { "rules": spec["rules"] },
        });
        self.api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(err)?;
        Ok(())
    }
}

/// The rules (with their index) that have `canary` among their backends.
fn rules_with<'a>(spec: &'a Value, canary: &str) -> Vec<(usize, &'a Value)> {
    spec["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, r)| {
            r["backendRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|b| b["name"] == canary)
        })
        .collect()
}

fn rule_name(route: &str, rule: &Value, i: usize, many: bool) -> String {
    crate::gateway::rule_name(route, rule["name"].as_str(), i, many)
}
