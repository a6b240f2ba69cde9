//! `weft stat`: a terminal table of success rate, request volume and latency, per service
//! or per instance, read from the dashboard's API (as `linkerd viz stat` reads its own);
//! `-o wide` adds what retries hide, as `linkerd routes -o wide` does.

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
    /// The table, with what callers saw (effective success) beside every attempt (actual
    /// success), retries a second and retries the budget refused over the window.
    Wide,
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
    /// How to print the rows (`wide` applies to services and instances).
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
        Output::Table | Output::Wide => {
            let wide = matches!(args.output, Output::Wide);
            print!("{}", table(&rows, args.by, wide));
            // Below the services, the splits between their backends, when there are any.
            if args.by == By::Service {
                // A dashboard from before routes has none to show.
                let splits = ask("routes")
                    .map(|v| rows_of_routes(&v))
                    .unwrap_or_default();
                if !splits.is_empty() {
                    println!();
                    print!("{}", table(&splits, By::Route, false));
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
            "actual_success_rate": stats["actual_success_rate"],
            "attempts": stats["attempts"],
            "retry_rps": stats["retry_rps"],
            "budget_refusals": stats["budget_refusals"],
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
    v.as_f64().map_or("-".into(), millis)
}

/// A latency in milliseconds to two significant digits (`0.42ms`, `3.1ms`, `25ms`), whole
/// from 10 ms up (`250ms`): the histogram's buckets are 0.1 ms apart below 1 ms and never
/// closer than a few percent of the value above, so a third digit would be noise, where
/// whole milliseconds hid every sub-millisecond hop. The dashboard's page uses the same
/// rule. Bounds are where rounding would carry into another digit (9.96 is `10ms`).
fn millis(v: f64) -> String {
    let decimals = match v {
        v if v >= 9.95 => 0,
        v if v >= 0.995 => 1,
        v if v >= 0.0995 => 2,
        _ => 3,
    };
    format!("{v:.decimals$}ms")
}

fn count(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |f| format!("{f:.0}"))
}

fn rps(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |f| format!("{f:.1}rps"))
}

fn table(rows: &[Value], by: By, wide: bool) -> String {
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
    let mut header = if wide {
        vec![
            first,
            "EFFECTIVE_SUCCESS",
            "ACTUAL_SUCCESS",
            "RPS",
            "RETRY_RPS",
            "BUDGET_REFUSED",
        ]
    } else {
        vec![first, "SUCCESS", "RPS"]
    };
    header.extend(["LATENCY_P50", "LATENCY_P95", "LATENCY_P99"]);
    let mut lines = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for r in rows {
        let mut name = r["name"].as_str().unwrap_or("").to_string();
        if r["kind"] == "endpoint" {
            name = format!("{} ({})", name, r["service"].as_str().unwrap_or(""));
        }
        if r["kind"] == "node" && r["up"] == Value::Bool(false) {
            name.push_str(" (down)");
        }
        let mut line = vec![name, pct(&r["success_rate"])];
        if wide {
            line.push(pct(&r["actual_success_rate"]));
        }
        line.push(rps(&r["rps"]));
        if wide {
            line.extend([rps(&r["retry_rps"]), count(&r["budget_refusals"])]);
        }
        line.extend([
            ms(&r["latency_p50_ms"]),
            ms(&r["latency_p95_ms"]),
            ms(&r["latency_p99_ms"]),
        ]);
        lines.push(line);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_show_two_significant_digits_and_whole_milliseconds_from_ten() {
        let shown: Vec<String> = [
            0.0423, 0.42, 0.996, 1.0, 3.12, 9.94, 9.96, 12.4, 250.0, 1234.5,
        ]
        .into_iter()
        .map(millis)
        .collect();
        assert_eq!(
            shown,
            [
                "0.042ms", "0.42ms", "1.0ms", "1.0ms", "3.1ms", "9.9ms", "10ms", "12ms", "250ms",
                "1234ms"
            ]
        );
        assert_eq!(ms(&Value::Null), "-");
    }

    #[test]
    fn the_wide_table_shows_effective_and_actual_success_and_dashes_where_nothing_was_counted() {
        let api = serde_json::json!({ "services": [
            { "service": "world", "stats": {
                "success_rate": 0.999, "actual_success_rate": 0.8, "attempts": 1200.0,
                "retry_rps": 4.0, "budget_refusals": 2.0, "rps": 16.0,
                "p50_ms": 0.42, "p95_ms": 3.12, "p99_ms": 250.0, "requests": 960.0 } },
            { "service": "quiet", "stats": {
                "success_rate": null, "actual_success_rate": null, "attempts": 0.0,
                "retry_rps": 0.0, "budget_refusals": 0.0, "rps": 0.0,
                "p50_ms": null, "p95_ms": null, "p99_ms": null, "requests": 0.0 } },
        ]});
        let rows = rows(&api, By::Service);
        assert_eq!(rows[0]["actual_success_rate"], 0.8);
        let wide = table(&rows, By::Service, true);
        let lines: Vec<Vec<&str>> = wide
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            [
                "SERVICE",
                "EFFECTIVE_SUCCESS",
                "ACTUAL_SUCCESS",
                "RPS",
                "RETRY_RPS",
                "BUDGET_REFUSED",
                "LATENCY_P50",
                "LATENCY_P95",
                "LATENCY_P99"
            ]
        );
        assert_eq!(
            lines[1],
            ["world", "99.90%", "80.00%", "16.0rps", "4.0rps", "2", "0.42ms", "3.1ms", "250ms"]
        );
        assert_eq!(
            lines[2],
            ["quiet", "-", "-", "0.0rps", "0.0rps", "0", "-", "-", "-"]
        );
        let narrow = table(&rows, By::Service, false);
        assert!(narrow.starts_with("SERVICE   SUCCESS   RPS"), "{narrow}");
    }

    #[test]
    fn the_wide_instance_table_shows_each_endpoints_retries_beside_its_nodes() {
        let stats = |retry_rps: f64, refused: f64| {
            serde_json::json!({
                "success_rate": 1.0, "actual_success_rate": 0.8, "attempts": 100.0,
                "retry_rps": retry_rps, "budget_refusals": refused, "rps": 8.0,
                "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0, "requests": 80.0 })
        };
        let api = serde_json::json!({
            "nodes": [{ "node": "n1", "target": "127.0.0.1:4191", "up": true, "stats": stats(2.0, 3.0) }],
            "endpoints": [
                { "service": "world", "endpoint": "10.0.0.1:80", "node": "n1", "stats": stats(1.5, 2.0) },
                { "service": "world", "endpoint": "10.0.0.2:80", "node": "n1", "stats": stats(0.5, 1.0) },
            ],
        });
        let rows = rows(&api, By::Instance);
        assert_eq!(rows[1]["retry_rps"], 1.5);
        let wide = table(&rows, By::Instance, true);
        let lines: Vec<Vec<&str>> = wide
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            &lines[1][..6],
            ["n1", "100.00%", "80.00%", "8.0rps", "2.0rps", "3"]
        );
        assert_eq!(
            &lines[2][..7],
            [
                "10.0.0.1:80",
                "(world)",
                "100.00%",
                "80.00%",
                "8.0rps",
                "1.5rps",
                "2"
            ]
        );
        assert_eq!(&lines[3][5..7], ["0.5rps", "1"]);
    }
}
