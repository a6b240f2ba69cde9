//! `weft stat`: a terminal table of success rate, request volume and latency, per service
//! or per instance, read from the dashboard's API (as `linkerd viz stat` reads its own).

use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::Value;
use weft_core::ports;

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum By {
    Service,
    Instance,
    /// Each routed service's rules and backends: live share, and each backend's own
    /// success rate and latency over every attempt sent to it.
    Route,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Args)]
pub struct StatArgs {
    /// Only this service.
    service: Option<String>,
    /// Rows per service, or per instance (node proxies and endpoints).
    #[arg(long, value_enum, default_value = "service")]
    by: By,
    /// The window the figures cover: 30s, 1m, 5m, 15m.
    #[arg(long, default_value = "1m")]
    window: String,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
    /// The dashboard to ask.
    #[arg(long, env = "WEFT_DASHBOARD", default_value_t = format!("http://{}", ports::loopback(ports::DASHBOARD)))]
    dashboard: String,
}

pub fn stat(args: StatArgs) -> anyhow::Result<()> {
    let window = weft_dashboard::api::parse_seconds(&args.window)
        .with_context(|| format!("invalid --window {:?}", args.window))?;
    let base = args.dashboard.trim_end_matches('/');
    let service = args
        .service
        .as_deref()
        .map(|s| format!("&service={}", weft_dashboard::fetch::encode_query(s)))
        .unwrap_or_default();
    let path = match args.by {
        By::Service => "services",
        By::Instance => "instances",
        By::Route => "routes",
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ask = |path: &str| -> anyhow::Result<Value> {
        let url = format!("{base}/api/{path}?window={window}{service}");
        let body = runtime
            .block_on(weft_dashboard::fetch::get(&url, Duration::from_secs(5)))
            .with_context(|| {
                format!(
                    "asking the dashboard at {base} (is `weft demo` or `weft dashboard` running?)"
                )
            })?;
        serde_json::from_slice(&body).context("the dashboard's answer is not JSON")
    };
    let v = ask(path)?;
    let rows = rows(&v, args.by);
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&Value::Array(rows))?),
        Output::Table => {
            print!("{}", table(&rows, args.by));
            // Below the services, the splits between their backends, when there are any.
            if args.by == By::Service {
                // A dashboard from before routes has none to show.
                let splits = ask("routes")
                    .map(|v| rows_of_routes(&v))
                    .unwrap_or_default();
                if !splits.is_empty() {
                    println!();
                    print!("{}", table(&splits, By::Route));
                }
            }
        }
    }
    Ok(())
}

/// One row per backend of each rule: the rule's name, the backend, its live share.
fn rows_of_routes(v: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for r in v["routes"].as_array().into_iter().flatten() {
        for b in r["backends"].as_array().into_iter().flatten() {
            let s = &b["stats"];
            out.push(serde_json::json!({
                "name": format!("{}/{}", r["service"].as_str().unwrap_or(""), r["route"].as_str().unwrap_or("")),
                "kind": "backend",
                "service": r["service"],
                "route": r["route"],
                "backend": b["backend"],
                "share": b["share"],
                "success_rate": s["success_rate"],
                "rps": s["rps"],
                "latency_p50_ms": s["p50_ms"],
                "latency_p95_ms": s["p95_ms"],
                "latency_p99_ms": s["p99_ms"],
                "attempts": s["requests"],
            }));
        }
    }
    out
}

/// Flattens the API's answer into one JSON object per row, with the window's figures.
fn rows(v: &Value, by: By) -> Vec<Value> {
    let mut out = Vec::new();
    let mut push = |name: Value, kind: &str, stats: &Value, extra: Value| {
        let mut row = serde_json::json!({
            "name": name,
            "kind": kind,
            "success_rate": stats["success_rate"],
            "rps": stats["rps"],
            "latency_p50_ms": stats["p50_ms"],
            "latency_p95_ms": stats["p95_ms"],
            "latency_p99_ms": stats["p99_ms"],
            "requests": stats["requests"],
        });
        if let (Some(r), Some(e)) = (row.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        out.push(row);
    };
    match by {
        By::Route => return rows_of_routes(v),
        By::Service => {
            for s in v["services"].as_array().into_iter().flatten() {
                push(s["service"].clone(), "service", &s["stats"], Value::Null);
            }
        }
        By::Instance => {
            for n in v["nodes"].as_array().into_iter().flatten() {
                let extra = serde_json::json!({ "up": n["up"], "proxy": n["target"] });
                push(n["node"].clone(), "node", &n["stats"], extra);
            }
            for e in v["endpoints"].as_array().into_iter().flatten() {
                let extra = serde_json::json!({ "service": e["service"], "node": e["node"] });
                push(e["endpoint"].clone(), "endpoint", &e["stats"], extra);
            }
        }
    }
    out
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or("-".into(), |f| format!("{:.2}%", f * 100.0))
}

fn ms(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |f| format!("{f:.0}ms"))
}

fn rps(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |f| format!("{f:.1}rps"))
}

fn table(rows: &[Value], by: By) -> String {
    let first = match by {
        By::Service => "SERVICE",
        By::Instance => "INSTANCE",
        By::Route => {
            let mut lines = vec![[
                "ROUTE",
                "BACKEND",
                "SHARE",
                "SUCCESS",
                "RPS",
                "LATENCY_P50",
                "LATENCY_P99",
            ]
            .map(String::from)
            .to_vec()];
            for r in rows {
                lines.push(vec![
                    r["name"].as_str().unwrap_or("").to_string(),
                    r["backend"].as_str().unwrap_or("").to_string(),
                    pct(&r["share"]),
                    pct(&r["success_rate"]),
                    rps(&r["rps"]),
                    ms(&r["latency_p50_ms"]),
                    ms(&r["latency_p99_ms"]),
                ]);
            }
            return render(lines);
        }
    };
    let mut lines = vec![vec![
        first.to_string(),
        "SUCCESS".into(),
        "RPS".into(),
        "LATENCY_P50".into(),
        "LATENCY_P95".into(),
        "LATENCY_P99".into(),
    ]];
    for r in rows {
        let mut name = r["name"].as_str().unwrap_or("").to_string();
        if r["kind"] == "endpoint" {
            name = format!("{} ({})", name, r["service"].as_str().unwrap_or(""));
        }
        if r["kind"] == "node" && r["up"] == Value::Bool(false) {
            name.push_str(" (down)");
        }
        lines.push(vec![
            name,
            pct(&r["success_rate"]),
            rps(&r["rps"]),
            ms(&r["latency_p50_ms"]),
            ms(&r["latency_p95_ms"]),
            ms(&r["latency_p99_ms"]),
        ]);
    }
    render(lines)
}

/// Columns padded to their widest cell.
fn render(lines: Vec<Vec<String>>) -> String {
    let columns = lines.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for l in lines {
        let cells: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}
