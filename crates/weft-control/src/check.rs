//! `weft check`: asks the Kubernetes API whether the mesh is up — the control plane, a ready
//! proxy on every node, the dashboard, the mesh's CA and when its certificates expire — and
//! says so in one line per thing checked.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::Api;

use crate::cluster::PROXY_LABEL;

mod identity;

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One thing checked, and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ok: bool,
    /// Fine now, but needs doing soon (a certificate near its end).
    pub warn: bool,
    pub what: String,
    pub detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = match (self.ok, self.warn) {
            (false, _) => "FAIL",
            (true, true) => "warn",
            (true, false) => "ok  ",
        };
        write!(f, "[{mark}] {}: {}", self.what, self.detail)
    }
}

fn finding(ok: bool, what: impl Into<String>, detail: impl Into<String>) -> Finding {
    Finding {
        ok,
        warn: false,
        what: what.into(),
        detail: detail.into(),
    }
}

async fn call<T>(
    fut: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    }
}

/// Everything `weft check` reports, in order; the mesh is healthy when all are ok.
pub async fn check(client: kube::Client, namespace: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let nodes = match call(Api::<Node>::all(client.clone()).list(&ListParams::default())).await {
        Ok(list) => {
            out.push(finding(
                true,
                "kubernetes API",
                format!("reachable, {} node(s)", list.items.len()),
            ));
            list.items
        }
        Err(e) => {
            out.push(finding(
                false,
                "kubernetes API",
                format!("unreachable: {e}"),
            ));
            return out;
        }
    };
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace);
    out.push(deployment(&deployments, namespace, "control plane", "weft-control").await);

    let selector = format!("{}={}", PROXY_LABEL.0, PROXY_LABEL.1);
    match call(
        Api::<Pod>::namespaced(client.clone(), namespace)
            .list(&ListParams::default().labels(&selector)),
    )
    .await
    {
        Ok(pods) => {
            let mut leaves = Vec::new();
            for node in &nodes {
                let name = node.metadata.name.clone().unwrap_or_default();
                let found = proxy_on(&name, &pods.items);
                if found.ok {
                    let pod = pods.items.iter().find(|p| {
                        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
                    });
                    if let Some(pod) = pod {
                        let holder = identity::Holder::proxy(&name);
                        leaves.extend(identity::leaf(&client, namespace, holder, pod).await);
                    }
                }
                out.push(found);
            }
            out.extend(leaves);
        }
        Err(e) => out.push(finding(false, "proxies", format!("cannot list pods: {e}"))),
    }
    out.push(deployment(&deployments, namespace, "dashboard", "weft-dashboard").await);
    out.extend(dashboard_leaf(&client, namespace).await);
    out.extend(identity::check(client.clone(), namespace).await);
    out
}

/// The leaf of the dashboard's running pod, when it has identity on.
async fn dashboard_leaf(client: &kube::Client, namespace: &str) -> Option<Finding> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let list = call(
        pods.list(&ListParams::default().labels(&format!("{}=weft-dashboard", PROXY_LABEL.0))),
    )
    .await
    .ok()?;
    let pod = list
        .items
        .iter()
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))?;
    identity::leaf(client, namespace, identity::Holder::dashboard(), pod).await
}

async fn deployment(api: &Api<Deployment>, namespace: &str, what: &str, name: &str) -> Finding {
    match call(api.get_opt(name)).await {
        Ok(Some(d)) => {
            let status = d.status.unwrap_or_default();
            let want = d.spec.replicas.unwrap_or(1);
            let ready = status.ready_replicas.unwrap_or(0);
            finding(
                ready >= 1,
                what,
                format!("{ready}/{want} replica(s) of deployment {namespace}/{name} ready"),
            )
        }
        Ok(None) => finding(
            false,
            what,
            format!(
                "deployment {namespace}/{name} not found (run `weft install | kubectl apply -f -`)"
            ),
        ),
        Err(e) => finding(
            false,
            what,
            format!("cannot read deployment {namespace}/{name}: {e}"),
        ),
    }
}

fn proxy_on(node: &str, pods: &[Pod]) -> Finding {
    let what = format!("proxy on {node}");
    let on_node: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .collect();
    let Some(pod) = on_node.first() else {
        return finding(false, what, "no weft-proxy pod on this node");
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if ready {
        return finding(true, what, format!("{name} ready"));
    }
    // Say why, as kubectl would: a waiting container's reason, else the pod phase.
    let why = status
        .container_statuses
        .iter()
        .flatten()
        .find_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            Some(match &w.message {
                Some(m) => format!("{}: {m}", w.reason.clone().unwrap_or_default()),
                None => w.reason.clone().unwrap_or_default(),
            })
        })
        .unwrap_or_else(|| status.phase.unwrap_or_else(|| "Unknown".into()));
    finding(false, what, format!("{name} not ready ({why})"))
}
