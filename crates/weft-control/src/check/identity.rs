//! The mesh's CA as the cluster holds it: the Secret the control plane signs from and the
//! ConfigMap of anchors proxies start with, each certificate's expiry (warned of well
//! ahead: an issuer 30 days before, an anchor 90), and whether the two agree on the anchors.

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

/// A certificate's expiry: failed when past, a warning within `notice`.
fn expiry(what: &str, end: Option<SystemTime>, notice: Duration) -> Finding {
    let Some(end) = end else {
        return finding(false, what, "does not parse");
    };
    let date = format_date(end);
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

/// `YYYY-MM-DD` (UTC).
fn format_date(t: SystemTime) -> String {
    let days = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / DAY.as_secs()) as i64;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_calendar_dates() {
        let at = |secs: u64| format_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01");
        assert_eq!(at(951_782_400), "2000-02-29");
        assert_eq!(at(1_796_169_600), "2026-12-02");
    }

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
