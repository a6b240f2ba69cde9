//! Where the dashboard's numbers come from: each proxy's `/metrics`, scraped directly, or a
//! Prometheus server that scrapes them. Both yield the same cumulative samples per proxy.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use weft_metrics::names::{label, sample};
use weft_metrics::parse::{exemplars, parse, Exemplar, Sample};

use crate::fetch::{self, encode_query};

const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// The weft samples the dashboard reads, as a PromQL name pattern.
fn families() -> String {
    [
        sample::REQUESTS,
        sample::RESPONSES,
        sample::LATENCY_BUCKET,
        sample::LATENCY_SUM,
        sample::ATTEMPTS,
        sample::RETRIES,
        sample::BUDGET_EXHAUSTED,
        sample::ENDPOINT_RETRIES,
        sample::ENDPOINT_BUDGET_EXHAUSTED,
        sample::SERVICE_ENDPOINTS,
        sample::ROUTE_REQUESTS,
        sample::ROUTE_RESPONSES,
        sample::ROUTE_LATENCY_BUCKET,
        sample::ROUTE_BACKEND_ATTEMPTS,
        sample::ROUTE_BACKEND_LATENCY_BUCKET,
        sample::PROXY_INFO,
        sample::INBOUND_PEER_REQUESTS,
        sample::IDENTITY_INFO,
    ]
    .join("|")
}

#[derive(Clone, Debug)]
pub enum Source {
    /// Admin addresses (`host:port`) of every proxy.
    Proxies(Vec<String>),
    /// A DNS name (`host:port`) resolved at every scrape to all proxies' admin addresses:
    /// on Kubernetes, the headless Service of the proxy DaemonSet.
    ProxiesDns(String),
    /// A Prometheus base URL, and the job its proxies are scraped under.
    Prometheus { url: String, job: String },
}

/// One proxy's state at one scrape.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// The proxy's admin address, its identity across scrapes.
    pub target: String,
    /// Its node name, from `weft_proxy_info`.
    pub node: Option<String>,
    /// Its mesh identity, from `weft_identity_info` (none without identities).
    pub identity: Option<String>,
    pub up: bool,
    pub samples: Vec<Sample>,
    /// The latency buckets' exemplars: kept traces (scraped proxies only; Prometheus
    /// answers instant queries without them).
    pub exemplars: Vec<Exemplar>,
    /// When the samples were taken (unix seconds), if the source knows it: Prometheus
    /// answers with its last scrape, which may be older than this query.
    pub at: Option<f64>,
}

impl Source {
    pub async fn scrape(&self) -> Vec<Scrape> {
        match self {
            Self::Proxies(targets) => scrape_all(targets).await,
            Self::ProxiesDns(name) => match tokio::net::lookup_host(name.as_str()).await {
                Ok(addrs) => {
                    let mut targets: Vec<String> = addrs.map(|a| a.to_string()).collect();
                    targets.sort();
                    targets.dedup();
                    scrape_all(&targets).await
                }
                Err(e) => {
                    tracing::warn!(name = %name, error = %e, "resolving the proxies failed");
                    Vec::new()
                }
            },
            Self::Prometheus { url, job } => match query_prometheus(url, job).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "Prometheus query failed");
                    Vec::new()
                }
            },
        }
    }
}

async fn scrape_all(targets: &[String]) -> Vec<Scrape> {
    let mut tasks = Vec::new();
    for t in targets {
        let url = format!("http://{t}/metrics");
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            match fetch::get_accepting(&url, SCRAPE_TIMEOUT, Some(OPENMETRICS)).await {
                Ok(body) => {
                    let text = String::from_utf8_lossy(&body);
                    Scrape {
                        exemplars: exemplars(&text),
                        ..finish(t, true, parse(&text))
                    }
                }
                Err(e) => {
                    // A proxy that is down is common and shown as down; one that sends too
                    // much is not, and is worth a line.
                    if matches!(e, fetch::FetchError::TooLarge { .. }) {
                        tracing::warn!(error = %e, "scrape refused");
                    } else {
                        tracing::debug!(error = %e, "scrape failed");
                    }
                    finish(t, false, Vec::new())
                }
            }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        if let Ok(s) = t.await {
            out.push(s);
        }
    }
    out
}

fn finish(target: String, up: bool, samples: Vec<Sample>) -> Scrape {
    let node = samples
        .iter()
        .find(|s| s.name == sample::PROXY_INFO)
        .and_then(|s| s.label(label::NODE))
        .map(str::to_string);
    let identity = samples
        .iter()
        .find(|s| s.name == sample::IDENTITY_INFO)
        .and_then(|s| s.label(label::IDENTITY))
        .map(str::to_string);
    Scrape {
        target,
        node,
        identity,
        up,
        samples,
        exemplars: Vec::new(),
        at: None,
    }
}

/// What the dashboard asks proxies for: OpenMetrics carries the latency exemplars.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";

#[derive(Deserialize)]
struct PromResponse {
    status: String,
    data: Option<PromData>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct PromData {
    result: Vec<PromSeries>,
}

#[derive(Deserialize)]
struct PromSeries {
    metric: HashMap<String, String>,
    value: (f64, String),
}

async fn instant_query(base: &str, query: &str) -> Result<Vec<PromSeries>, String> {
    let url = format!(
        "{}/api/v1/query?query={}",
        base.trim_end_matches('/'),
        encode_query(query)
    );
    let body = fetch::get(&url, SCRAPE_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let rsp: PromResponse = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    if rsp.status != "success" {
        return Err(rsp.error.unwrap_or(rsp.status));
    }
    Ok(rsp.data.map(|d| d.result).unwrap_or_default())
}

/// The latest value of every weft series, grouped by the proxy (`instance`) it came from.
async fn query_prometheus(base: &str, job: &str) -> Result<Vec<Scrape>, String> {
    let up = instant_query(base, &format!("up{{job=\"{job}\"}}")).await?;
    let scraped: HashMap<String, f64> =
        instant_query(base, &format!("timestamp(up{{job=\"{job}\"}})"))
            .await?
            .into_iter()
            .filter_map(|s| Some((s.metric.get("instance")?.clone(), s.value.1.parse().ok()?)))
            .collect();
    let series = instant_query(
        base,
        &format!("{{__name__=~\"{}\",job=\"{job}\"}}", families()),
    )
    .await?;
    let mut by_target: HashMap<String, Vec<Sample>> = HashMap::new();
    for s in series {
        let Some(target) = s.metric.get("instance").cloned() else {
            continue;
        };
        let Ok(value) = s.value.1.parse::<f64>() else {
            continue;
        };
        let name = s.metric.get("__name__").cloned().unwrap_or_default();
        let labels = s
            .metric
            .into_iter()
            .filter(|(k, _)| !matches!(k.as_str(), "__name__" | "instance" | "job"))
            .collect();
        by_target.entry(target).or_default().push(Sample {
            name,
            labels,
            value,
        });
    }
    Ok(up
        .into_iter()
        .filter_map(|u| {
            let target = u.metric.get("instance")?.clone();
            let is_up = u.value.1 == "1";
            let samples = if is_up {
                by_target.remove(&target).unwrap_or_default()
            } else {
                Vec::new()
            };
            let at = scraped.get(&target).copied();
            Some(Scrape {
                at,
                ..finish(target, is_up, samples)
            })
        })
        .collect())
}
