//! `weft shift SERVICE --to BACKEND`: a canary rollout. Weight moves to the canary step by
//! step, through the routes where they live (a discovery file, or an HTTPRoute on
//! Kubernetes); all along, every few seconds, the canary is judged from the dashboard's
//! aggregate of every proxy ([`judge`]). A failing or slow canary is rolled back to 0 % at
//! once, with the reason; too little traffic holds the step, and holding too long rolls
//! back too: it never promotes on no data.

mod file_weights;
mod judge;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::Value;
use weft_control::route_edit::KubeRoute;
pub use weft_control::route_edit::RuleWeights;
use weft_core::{duration, ports};

use file_weights::FileWeights;
use judge::{judge, Criteria, Figures, Verdict};

#[derive(Args)]
pub struct ShiftArgs {
    /// The service whose traffic moves: the parent of the routes.
    service: String,
    /// The backend service the traffic moves to: the canary.
    #[arg(long)]
    to: String,
    /// Percent of the traffic added to the canary at each step.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    step: u32,
    /// The canary's percent at each step instead, such as `5,10,25,50`; 100 then promotes.
    #[arg(long, value_delimiter = ',', conflicts_with = "step")]
    steps: Vec<u32>,
    /// How long each step lasts, judged all along, before the next one.
    #[arg(long, default_value = "30s", value_parser = duration::parse)]
    interval: Duration,
    /// How often the canary is judged.
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    judge_every: Duration,
    /// The window each judgement's figures cover.
    #[arg(long, default_value = "30s", value_parser = duration::parse)]
    window: Duration,
    /// Attempts the canary must have had in the window before it is judged; fewer: hold.
    /// (Its p99 is compared once each backend has had 100.)
    #[arg(long, default_value_t = 50)]
    min_requests: u64,
    /// Percentage points the canary's success rate may be below the current backend's.
    #[arg(long, default_value_t = 1.0)]
    max_success_drop: f64,
    /// How many times the current backend's p99 latency the canary's may be.
    #[arg(long, default_value_t = 1.5)]
    max_p99_ratio: f64,
    /// Holding longer than this (too little traffic to judge) rolls the canary back.
    #[arg(long, default_value = "10m", value_parser = duration::parse)]
    hold_timeout: Duration,
    /// Only this route: a discovery file's rule name, or the HTTPRoute's name.
    #[arg(long)]
    route: Option<String>,
    /// Where the routes are: a discovery file (the demo's, or the one `weft control` or
    /// the proxies read). Without it, HTTPRoutes on Kubernetes.
    #[arg(long, conflicts_with = "kubeconfig")]
    discovery_file: Option<PathBuf>,
    /// The cluster's kubeconfig [default: the environment's, or in-cluster].
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The namespace of the service and its HTTPRoute.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// The dashboard whose figures judge the canary.
    #[arg(long, env = "WEFT_DASHBOARD", default_value_t = format!("http://{}", ports::loopback(ports::DASHBOARD)))]
    dashboard: String,
}

/// Where the weights live.
enum Weights {
    File(FileWeights),
    Kube(Box<KubeRoute>),
}

impl Weights {
    async fn get(&self) -> anyhow::Result<Vec<RuleWeights>> {
        match self {
            Self::File(f) => f.get(),
            Self::Kube(k) => Ok(k.get().await?),
        }
    }

    async fn set(&self, w: &[RuleWeights]) -> anyhow::Result<()> {
        match self {
            Self::File(f) => f.set(w),
            Self::Kube(k) => Ok(k.set(w).await?),
        }
    }
}

pub fn run(args: ShiftArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(shift(args))
}

async fn shift(args: ShiftArgs) -> anyhow::Result<()> {
    let (service, canary) = (args.service.as_str(), args.to.as_str());
    let weights = match &args.discovery_file {
        Some(path) => Weights::File(FileWeights::find(
            path,
            service,
            canary,
            args.route.as_deref(),
        )?),
        None => {
            let client = weft_control::kube_client(args.kubeconfig.as_deref()).await?;
            let route = KubeRoute::find(
                client,
                &args.namespace,
                service,
                canary,
                args.route.as_deref(),
            )
            .await?;
            println!("HTTPRoute {}/{}", args.namespace, route.name);
            Weights::Kube(Box::new(route))
        }
    };
    let original = weights.get().await?;
    for rule in &original {
        if rule.weights.iter().all(|(b, w)| b == canary || *w == 0) {
            bail!(
                "route {}: no backend but {canary} has weight, so there is no traffic to move from",
                rule.rule
            );
        }
    }
    let plan = plan(&args);
    let criteria = Criteria {
        min_requests: args.min_requests as f64,
        max_success_drop: args.max_success_drop / 100.0,
        max_p99_ratio: args.max_p99_ratio,
        p99_slack_ms: 5.0,
    };
    println!(
        "shift {service} → {canary}: steps {plan:?} %, {:?} each; judged every {:?} over the last {:?} (at least {} attempts), from {}",
        args.interval, args.judge_every, args.window, args.min_requests, args.dashboard
    );
    let started = Instant::now();
    let mut baseline_seen: Option<Figures> = None;
    // What the weights are now, as far as this shift knows: a change by anyone else stops it.
    let mut expected = original.clone();
    for (k, &percent) in plan.iter().enumerate() {
        let at = weighted(&original, canary, percent);
        if let Err(e) = set(&weights, &expected, &at).await {
            if e.is::<ChangedElsewhere>() {
                return Err(e);
            }
            let why = format!("setting the step's weights failed: {e:#}");
            return roll_back(&weights, &expected, &original, canary, started, &why).await;
        }
        expected = at.clone();
        println!("step {}/{}: {}", k + 1, plan.len(), describe(&at));
        let step_start = Instant::now();
        let mut holding_since: Option<Instant> = None;
        loop {
            tokio::select! {
                () = tokio::time::sleep(args.judge_every) => {}
                _ = tokio::signal::ctrl_c() => {
                    let why = "interrupted";
                    return roll_back(&weights, &expected, &original, canary, started, why).await;
                }
            }
            let figures = figures(&args, service, canary).await;
            let (verdict, shown) = match &figures {
                Ok((c, base)) => {
                    if let Some(b) = base
                        .as_ref()
                        .filter(|b| b.attempts >= criteria.min_requests)
                    {
                        baseline_seen = Some(b.clone());
                    }
                    let against = base
                        .as_ref()
                        .filter(|b| b.attempts >= criteria.min_requests)
                        .or(baseline_seen.as_ref());
                    (judge(c, against, &criteria), show(canary, c, base.as_ref()))
                }
                Err(e) => (Verdict::Hold(format!("no figures: {e:#}")), String::new()),
            };
            println!(
                "  {:>5.1}s  step {} at {percent}%  {shown}  verdict: {verdict}",
                started.elapsed().as_secs_f64(),
                k + 1
            );
            match verdict {
                Verdict::Failing(why) => {
                    return roll_back(&weights, &expected, &original, canary, started, &why).await;
                }
                Verdict::Hold(_) => {
                    let since = *holding_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= args.hold_timeout {
                        let why = format!(
                            "too little traffic to judge the canary for {:?}",
                            args.hold_timeout
                        );
                        return roll_back(&weights, &expected, &original, canary, started, &why)
                            .await;
                    }
                }
                Verdict::Healthy => {
                    holding_since = None;
                    if step_start.elapsed() >= args.interval {
                        break;
                    }
                }
            }
        }
    }
    let all = weighted(&original, canary, 100);
    set(&weights, &expected, &all).await?;
    println!(
        "promoted: {canary} takes all of {service}'s traffic ({}) after {:.1}s",
        describe(&all),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The canary's percent at each step before the promotion to 100.
fn plan(args: &ShiftArgs) -> Vec<u32> {
    let steps: Vec<u32> = if args.steps.is_empty() {
        (1..)
            .map(|i| i * args.step)
            .take_while(|p| *p < 100)
            .collect()
    } else {
        args.steps.iter().copied().filter(|p| *p < 100).collect()
    };
    steps
}

/// Each rule with the canary at `percent` and the other backends sharing the rest as their
/// original weights did.
fn weighted(original: &[RuleWeights], canary: &str, percent: u32) -> Vec<RuleWeights> {
    original
        .iter()
        .map(|rule| {
            let others: u64 = rule
                .weights
                .iter()
                .filter(|(b, _)| b != canary)
                .map(|(_, w)| u64::from(*w))
                .sum();
            let rest = u64::from(100 - percent.min(100));
            RuleWeights {
                rule: rule.rule.clone(),
                weights: rule
                    .weights
                    .iter()
                    .map(|(b, w)| {
                        let w = if b == canary {
                            percent
                        } else {
                            (rest * u64::from(*w) + others / 2)
                                .checked_div(others)
                                .unwrap_or(0) as u32
                        };
                        (b.clone(), w)
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Another hand moved the weights while the shift ran: it stops and leaves them be.
#[derive(Debug)]
struct ChangedElsewhere(String);

impl std::fmt::Display for ChangedElsewhere {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the route's weights were changed by someone else since the last step (now {}); the shift stops and leaves them as they are",
            self.0
        )
    }
}

impl std::error::Error for ChangedElsewhere {}

/// Sets `next`, once the weights are checked to be still `expected`.
async fn set(
    weights: &Weights,
    expected: &[RuleWeights],
    next: &[RuleWeights],
) -> anyhow::Result<()> {
    let now = weights.get().await?;
    if now != expected {
        return Err(ChangedElsewhere(describe(&now)).into());
    }
    weights.set(next).await
}

async fn roll_back(
    weights: &Weights,
    expected: &[RuleWeights],
    original: &[RuleWeights],
    canary: &str,
    started: Instant,
    why: &str,
) -> anyhow::Result<()> {
    let back = weighted(original, canary, 0);
    set(weights, expected, &back)
        .await
        .context("rolling back")?;
    println!(
        "rolled back: {canary} at 0% ({}) after {:.1}s: {why}",
        describe(&back),
        started.elapsed().as_secs_f64()
    );
    bail!("the canary {canary} was rolled back: {why}")
}

fn describe(rules: &[RuleWeights]) -> String {
    rules
        .iter()
        .map(|r| {
            let w: Vec<String> = r.weights.iter().map(|(b, w)| format!("{b} {w}")).collect();
            format!("{} [{}]", r.rule, w.join(" / "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn show(canary: &str, c: &Figures, base: Option<&Figures>) -> String {
    let one = |f: &Figures| {
        format!(
            "{:.0} attempts, {}, p99 {}",
            f.attempts,
            f.success_rate
                .map_or("-".into(), |s| format!("{:.2}% ok", s * 100.0)),
            f.p99_ms.map_or("-".into(), |p| format!("{p:.1} ms"))
        )
    };
    match base {
        Some(b) => format!("{canary}: {} | current: {}", one(c), one(b)),
        None => format!("{canary}: {}", one(c)),
    }
}

/// The canary's figures and the current backend's (the other backend of the service with
/// the most attempts), over the window, from the dashboard.
async fn figures(
    args: &ShiftArgs,
    service: &str,
    canary: &str,
) -> anyhow::Result<(Figures, Option<Figures>)> {
    let base = args.dashboard.trim_end_matches('/');
    let url = format!(
        "{base}/api/routes?service={}&window={}",
        weft_dashboard::fetch::encode_query(service),
        args.window.as_secs_f64()
    );
    let body = weft_dashboard::fetch::get(&url, Duration::from_secs(5))
        .await
        .with_context(|| format!("asking the dashboard at {base}"))?;
    let v: Value = serde_json::from_slice(&body).context("the dashboard's answer is not JSON")?;
    let of = |b: &Value| Figures {
        attempts: b["stats"]["requests"].as_f64().unwrap_or(0.0),
        success_rate: b["stats"]["success_rate"].as_f64(),
        p99_ms: b["stats"]["p99_ms"].as_f64(),
    };
    let backends = v["backends"].as_array().cloned().unwrap_or_default();
    let canary_figures = backends
        .iter()
        .find(|b| b["backend"] == canary)
        .map(of)
        .unwrap_or_default();
    let current = backends
        .iter()
        .filter(|b| b["backend"] != canary)
        .map(of)
        .max_by(|a, b| a.attempts.total_cmp(&b.attempts));
    Ok((canary_figures, current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_is_shared_as_the_original_weights_were() {
        let original = vec![RuleWeights {
            rule: "split".into(),
            weights: vec![("v1".into(), 3), ("v1b".into(), 1), ("v2".into(), 0)],
        }];
        let at = weighted(&original, "v2", 20);
        assert_eq!(
            at[0].weights,
            [("v1".into(), 60), ("v1b".into(), 20), ("v2".into(), 20)]
        );
        assert_eq!(weighted(&original, "v2", 0)[0].weights[2].1, 0);
        assert_eq!(weighted(&original, "v2", 100)[0].weights[0].1, 0);
    }
}
