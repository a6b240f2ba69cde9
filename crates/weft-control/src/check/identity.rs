//! The mesh's CA as the cluster holds it: the Secret the control plane signs from and the
//! ConfigMap of anchors proxies start with, each certificate's expiry (warned of well
//! ahead: an issuer 30 days before, an anchor 90), and whether the two agree on the anchors;
//! and each proxy's own leaf, and the dashboard's, read from their metrics through the API
//! server's pod proxy.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use weft_identity::material::{self, certificates, not_after};

use super::{call, finding, Finding};
use crate::install::{ANCHORS_CONFIGMAP, ISSUER_SECRET};

const DAY: Duration = Duration::from_secs(24 * 3600);
const ISSUER_NOTICE: Duration = Duration::from_secs(30 * 24 * 3600);
const ANCHOR_NOTICE: Duration = Duration::from_secs(90 * 24 * 3600);

pub(super) async fn check(client: kube::Client, namespace: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let secret = match call(
        Api::<Secret>::namespaced(client.clone(), namespace).get_opt(ISSUER_SECRET),
    )
    .await
    {
        Ok(Some(s)) => s,
        Ok(None) => {
            out.push(finding(
                false,
                "identity",
                format!("secret {namespace}/{ISSUER_SECRET} not found: the control plane has no CA (docs/identity.md)"),
            ));
            return out;
        }
        Err(e) => {
            out.push(finding(
                false,
                "identity",
                format!("cannot read secret {namespace}/{ISSUER_SECRET}: {e}"),
            ));
            return out;
        }
    };
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default()
    };
    let anchors = match certificates(&text(material::ANCHORS_FILE)) {
        Ok(a) => a,
        Err(e) => {
            out.push(finding(
                false,
                "trust anchors",
                format!("secret {ISSUER_SECRET}, {}: {e}", material::ANCHORS_FILE),
            ));
            return out;
        }
    };
    for (i, anchor) in anchors.iter().enumerate() {
        let what = if anchors.len() == 1 {
            "trust anchor".to_string()
        } else {
            format!("trust anchor {} of {}", i + 1, anchors.len())
        };
        out.push(expiry(&what, not_after(anchor), ANCHOR_NOTICE));
    }
    match certificates(&text(material::ISSUER_FILE)) {
        Ok(issuer) => out.push(expiry("issuer", not_after(&issuer[0]), ISSUER_NOTICE)),
        Err(e) => out.push(finding(
            false,
            "issuer",
            format!("secret {ISSUER_SECRET}, {}: {e}", material::ISSUER_FILE),
        )),
    }
    match call(Api::<ConfigMap>::namespaced(client, namespace).get_opt(ANCHORS_CONFIGMAP)).await {
        Ok(Some(cm)) => {
            let held = cm
                .data
                .unwrap_or_default()
                .get(material::ANCHORS_FILE)
                .map(|t| certificates(t).unwrap_or_default())
                .unwrap_or_default();
            let mut f = finding(
                true,
                "proxies' anchors",
                format!(
                    "configmap {ANCHORS_CONFIGMAP} holds the secret's {} anchor(s)",
                    anchors.len()
                ),
            );
            if held != anchors {
                f.warn = true;
                f.detail = format!(
                    "configmap {ANCHORS_CONFIGMAP} holds {} anchor(s) that differ from the secret's: a proxy that restarts checks the control plane against them (update both in a rotation)",
                    held.len()
                );
            }
            out.push(f);
        }
        Ok(None) => out.push(finding(
            false,
            "proxies' anchors",
            format!("configmap {namespace}/{ANCHORS_CONFIGMAP} not found: proxies cannot start"),
        )),
        Err(e) => out.push(finding(
            false,
            "proxies' anchors",
            format!("cannot read configmap {namespace}/{ANCHORS_CONFIGMAP}: {e}"),
        )),
    }
    out
}

/// A proxy renews at 70 % of its leaf's life (7 h 12 min before the end of a 24 h leaf):
/// this little left means renewals have been failing for hours.
const LEAF_NOTICE: Duration = Duration::from_secs(2 * 3600);
/// A component whose leaf is read from its `/metrics`.
pub(super) struct Holder {
    /// `leaf of …`, in the finding.
    pub what: String,
    /// The container port serving `/metrics`, by name, and by number when the pod does not
    /// name it.
    pub port: (&'static str, i32),
    /// Where the component says why it has no leaf.
    pub says_why: &'static str,
}

impl Holder {
    pub fn proxy(node: &str) -> Self {
        Self {
            what: format!("leaf of the proxy on {node}"),
            port: ("admin", 9990),
            says_why: "the proxy's /ready",
        }
    }

    pub fn dashboard() -> Self {
        Self {
            what: "leaf of the dashboard".into(),
            port: ("http", 8084),
            says_why: "the dashboard's /api/summary",
        }
    }
}

/// The leaf the component in `pod` presents, from
/// `weft_identity_leaf_expiry_timestamp_seconds` in its metrics; `None` for one without
/// identities.
pub(super) async fn leaf(
    client: &kube::Client,
    namespace: &str,
    holder: Holder,
    pod: &k8s_openapi::api::core::v1::Pod,
) -> Option<Finding> {
    let Holder {
        what,
        port: (port_name, default_port),
        says_why,
    } = holder;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let port = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(port_name))
        .map_or(default_port, |p| p.container_port);
    let path = format!("/api/v1/namespaces/{namespace}/pods/{name}:{port}/proxy/metrics");
    let request = match http::Request::get(&path).body(Vec::new()) {
        Ok(r) => r,
        Err(e) => return Some(finding(false, what, e.to_string())),
    };
    let text = match call(client.request_text(request)).await {
        Ok(t) => t,
        // Not the mesh failing: perhaps no right to pods/proxy. Said, not failed.
        Err(e) => {
            let mut f = finding(
                true,
                what,
                format!("cannot read {name}'s metrics through the API server: {e}"),
            );
            f.warn = true;
            return Some(f);
        }
    };
    let value = |series: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
    };
    let identity = text.lines().find_map(|l| {
        let rest = l.strip_prefix("weft_identity_info{identity=\"")?;
        Some(rest.split('"').next()?.to_string())
    });
    let expiry = value("weft_identity_leaf_expiry_timestamp_seconds ")?;
    let identity = identity.unwrap_or_else(|| "(unnamed)".into());
    if expiry <= 0.0 {
        return Some(finding(
            false,
            what,
            format!("{identity} has no leaf yet ({says_why} says why)"),
        ));
    }
    let end = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(expiry);
    let mut f = expiry_in_hours(&what, end, LEAF_NOTICE, says_why);
    f.detail = format!("{identity}, {}", f.detail);
    Some(f)
}

/// As [`expiry`], in hours and minutes: leaves live a day.
fn expiry_in_hours(what: &str, end: SystemTime, notice: Duration, says_why: &str) -> Finding {
    match end.duration_since(SystemTime::now()) {
        Err(_) => finding(
            false,
            what,
            format!("expired: peers refuse it; it cannot renew ({says_why} says why)"),
        ),
        Ok(left) => {
            let (h, m) = (left.as_secs() / 3600, left.as_secs() % 3600 / 60);
            let mut f = finding(true, what, format!("expires in {h}h {m:02}m"));
            if left < notice {
                f.warn = true;
                f.detail
                    .push_str(&format!(": not renewed in time ({says_why} says why)"));
            }
            f
        }
    }
}

/// A certificate's expiry: failed when past, a warning within `notice`.
fn expiry(what: &str, end: Option<SystemTime>, notice: Duration) -> Finding {
    let Some(end) = end else {
        return finding(false, what, "does not parse");
    };
    let date = crate::calendar::date(end);
    match end.duration_since(SystemTime::now()) {
        Err(_) => finding(
            false,
            what,
            format!("expired on {date}: peers refuse every leaf under it"),
        ),
        Ok(left) => {
            let days = left.as_secs() / DAY.as_secs();
            let mut f = finding(true, what, format!("expires {date}, in {days} day(s)"));
            if left < notice {
                f.warn = true;
                f.detail.push_str(": rotate it (docs/identity.md)");
            }
            f
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_is_failed_when_past_and_warned_of_ahead() {
        let now = SystemTime::now();
        assert!(!expiry("x", Some(now - DAY), DAY).ok);
        let soon = expiry("x", Some(now + DAY), 7 * DAY);
        assert!(soon.ok && soon.warn, "{soon}");
        let far = expiry("x", Some(now + 30 * DAY), 7 * DAY);
        assert!(far.ok && !far.warn, "{far}");
    }
}
