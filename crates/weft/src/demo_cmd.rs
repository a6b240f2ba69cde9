//! `weft demo`, `weft hello-world` and `weft dashboard`: flags in, wiring to the crates out.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::watch;
use weft_core::{duration, ports};
use weft_dashboard::source::Source;
use weft_demo::app::AppConfig;
use weft_demo::autoscaler::{self, Autoscale};
use weft_demo::demo::{AutoscaleConfig, DemoConfig, Latency};

#[derive(Args)]
pub struct DemoArgs {
    /// Number of nodes; each is a loopback address with its own proxy, hello and world.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// The nodes' addresses [default: 127.0.0.2, 127.0.0.3, …].
    #[arg(long, value_delimiter = ',')]
    node_ips: Vec<IpAddr>,
    /// Ports on every node (0 picks free ones).
    #[arg(long, default_value_t = ports::OUTBOUND)]
    outbound_port: u16,
    #[arg(long, default_value_t = ports::INBOUND)]
    inbound_port: u16,
    #[arg(long, default_value_t = ports::ADMIN)]
    admin_port: u16,
    #[arg(long, default_value_t = 7777)]
    hello_port: u16,
    #[arg(long, default_value_t = 7778)]
    world_port: u16,
    /// The ingress, on the first node: outside traffic to hello (0: any free port).
    #[arg(long, default_value_t = 8080)]
    ingress_port: u16,
    /// hello instances per node (ports count up from the base port).
    #[arg(long, default_value_t = 1)]
    hello_instances: usize,
    /// world instances per node (ports count up from the base port); with --autoscale,
    /// world's instances in all at first, spread over the nodes.
    #[arg(long, default_value_t = 1)]
    world_instances: usize,
    /// Where the dashboard listens.
    #[arg(long, default_value_t = ports::loopback(ports::DASHBOARD))]
    dashboard: SocketAddr,
    /// How often the dashboard collects metrics.
    #[arg(long, default_value = "2s", value_parser = duration::parse)]
    scrape_interval: Duration,
    /// Requests per second the traffic generator sends to hello (0: none), up to 10000;
    /// changed at run time with `POST /traffic` on --traffic-control-port.
    #[arg(long, default_value_t = 20.0)]
    rps: f64,
    /// The traffic control's port on the first node (0: any free one): `GET /traffic`
    /// answers the rate and the generator's counts, `POST /traffic?rps=N` sets a new rate.
    #[arg(long, default_value_t = weft_demo::traffic::CONTROL_PORT)]
    traffic_control_port: u16,
    /// Scale world's instances on its load as a Kubernetes HPA would: a target in requests
    /// per second per instance, and the bounds, e.g. `world=10rps,min=1,max=10` [default
    /// min 1, max 10]. The first count is --world-instances, within the bounds; instances
    /// are added on the nodes in turn and removed without a failed request.
    #[arg(long)]
    autoscale: Option<Autoscale>,
    /// How often the autoscaler decides (the HPA controller's sync period).
    #[arg(long, default_value = "15s", value_parser = duration::parse, requires = "autoscale")]
    autoscale_interval: Duration,
    /// How long a lower proposal must hold before instances are removed: the highest
    /// proposal within this window is followed (the HPA's scale-down stabilisation).
    #[arg(long, default_value = "5m", value_parser = duration::parse, requires = "autoscale")]
    autoscale_stabilization: Duration,
    /// Fraction of world's answers that fail with 500, from 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    world_failure_rate: f64,
    /// Added latency of world: `50ms` for every instance, `node-2=50ms` for one node's.
    #[arg(long)]
    world_latency: Vec<Latency>,
    /// Let the proxies retry failed requests within their retry budget.
    #[arg(long)]
    retries: bool,
    /// Plaintext between the nodes' proxies instead of mutual TLS.
    #[arg(long)]
    plaintext: bool,
    /// A second version of world, world-v2 (one instance per node), and world split between
    /// world-v1 and world-v2 by a route, all to v1 at first: for `weft shift`.
    #[arg(long)]
    world_v2: bool,
    /// Fraction of world-v2's answers that fail with 500, from 0 to 1.
    #[arg(long, default_value_t = 0.0, requires = "world_v2")]
    world_v2_failure_rate: f64,
    /// Added latency of world-v2's every answer.
    #[arg(long, default_value = "0s", value_parser = duration::parse, requires = "world_v2")]
    world_v2_latency: Duration,
    /// An OTLP/gRPC collector (HOST:PORT) every proxy sends its spans to: a share of the
    /// traces (--trace-sample-rate), and every failed or slow request.
    #[arg(long)]
    otlp: Option<String>,
    /// Share of new traces sampled, from 0 to 1.
    #[arg(long, default_value_t = 0.01, requires = "otlp")]
    trace_sample_rate: f64,
    /// Where the dashboard links the slowest requests' traces: a trace UI's URL with
    /// `{trace_id}` in it, e.g. http://127.0.0.1:16686/trace/{trace_id} (Jaeger).
    #[arg(long, value_parser = trace_url, requires = "otlp")]
    trace_url: Option<String>,
}

pub fn demo(args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.world_failure_rate),
        "--world-failure-rate must be between 0 and 1"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.world_v2_failure_rate),
        "--world-v2-failure-rate must be between 0 and 1"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.trace_sample_rate),
        "--trace-sample-rate must be between 0 and 1"
    );
    anyhow::ensure!(
        (0.0..=weft_demo::traffic::MAX_RPS).contains(&args.rps),
        "--rps must be from 0 to {}",
        weft_demo::traffic::MAX_RPS
    );
    anyhow::ensure!(
        !(args.autoscale.is_some() && args.world_v2),
        "--autoscale cannot go with --world-v2: there world is split by a route between world-v1 and world-v2, and the autoscaler scales world's own instances"
    );
    anyhow::ensure!(
        args.autoscale_interval >= Duration::from_secs(1),
        "--autoscale-interval must be at least 1s"
    );
    anyhow::ensure!(
        args.autoscale_stabilization <= autoscaler::MAX_STABILIZATION,
        "--autoscale-stabilization must be at most 1h, as Kubernetes allows"
    );
    let mut ips = args.node_ips.clone();
    if ips.is_empty() {
        ips = (0..args.nodes)
            .map(|i| IpAddr::from([127, 0, 0, 2 + i.min(250) as u8]))
            .collect();
    }
    ips.truncate(args.nodes);
    anyhow::ensure!(
        ips.len() == args.nodes,
        "--node-ips names {} addresses for {} nodes",
        ips.len(),
        args.nodes
    );
    let config = DemoConfig {
        node_ips: ips,
        outbound_port: args.outbound_port,
        inbound_port: args.inbound_port,
        admin_port: args.admin_port,
        hello_port: args.hello_port,
        world_port: args.world_port,
        ingress_port: args.ingress_port,
        hello_instances: args.hello_instances.max(1),
        world_instances: args.world_instances.max(1),
        dashboard: args.dashboard,
        scrape_interval: args.scrape_interval,
        rps: args.rps,
        world_failure_rate: args.world_failure_rate,
        world_latency: args.world_latency,
        retries: args.retries,
        plaintext: args.plaintext,
        world_v2: args.world_v2.then_some(weft_demo::demo::WorldV2 {
            failure_rate: args.world_v2_failure_rate,
            latency: args.world_v2_latency,
        }),
        otlp: args.otlp,
        trace_sample_rate: args.trace_sample_rate,
        trace_url: args.trace_url,
        traffic_control_port: args.traffic_control_port,
        autoscale: args.autoscale.map(|spec| AutoscaleConfig {
            spec,
            interval: args.autoscale_interval,
            stabilization: args.autoscale_stabilization,
        }),
    };
    run_until_signal(
        |stop| async move { weft_demo::demo::run(config, stop).await.map_err(Into::into) },
    )
}

#[derive(Args)]
pub struct HelloWorldArgs {
    /// Where to listen.
    #[arg(long, default_value = "0.0.0.0:7777")]
    addr: SocketAddr,
    /// What this app calls itself: Hello, world …
    #[arg(long, default_value = "Hello")]
    text: String,
    /// A service to call for each request, through the proxy.
    #[arg(long)]
    target: Option<String>,
    /// The proxy to call through [default: from http_proxy].
    #[arg(long)]
    proxy: Option<SocketAddr>,
    /// Added latency per request, e.g. 50ms.
    #[arg(long, default_value = "0ms", value_parser = duration::parse)]
    latency: Duration,
    /// Fraction of requests answered with 500, from 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    failure_rate: f64,
}

#[derive(Args)]
pub struct GreetArgs {
    /// The service to call, `service:port`.
    target: String,
    /// The proxy to call through [default: from http_proxy].
    #[arg(long)]
    proxy: Option<SocketAddr>,
}

/// `weft greet`: one gRPC call to the demo's world, through a tunnel as gRPC apps make them.
pub fn greet(args: GreetArgs) -> anyhow::Result<()> {
    let proxy = args
        .proxy
        .or_else(proxy_from_env)
        .context("no proxy: pass --proxy ADDR or set http_proxy")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reply = runtime.block_on(weft_demo::grpc::greet(proxy, &args.target))?;
    if reply.status != 0 {
        anyhow::bail!("grpc-status {}: {}", reply.status, reply.message);
    }
    println!("{}", reply.message);
    Ok(())
}

/// `http_proxy=node:4140` or `http://node:4140/` → the proxy's address.
fn proxy_from_env() -> Option<SocketAddr> {
    let v = std::env::var("http_proxy")
        .or_else(|_| std::env::var("HTTP_PROXY"))
        .ok()?;
    let v = v.trim().trim_start_matches("http://").trim_end_matches('/');
    use std::net::ToSocketAddrs;
    v.to_socket_addrs().ok()?.next()
}

pub fn hello_world(args: HelloWorldArgs) -> anyhow::Result<()> {
    let proxy = args.proxy.or_else(proxy_from_env);
    if args.target.is_some() && proxy.is_none() {
        anyhow::bail!("--target needs a proxy: pass --proxy ADDR or set http_proxy");
    }
    let config = AppConfig {
        text: args.text,
        target: args.target,
        proxy,
        latency: args.latency,
        failure_rate: args.failure_rate.clamp(0.0, 1.0),
    };
    let addr = args.addr;
    run_until_signal(|stop| async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr().unwrap_or(addr);
        tracing::info!(addr = %bound, "hello-world listening");
        weft_demo::app::serve(listener, config, stop).await;
        Ok(())
    })
}

#[derive(Args)]
pub struct DashboardArgs {
    /// Where the dashboard listens.
    #[arg(long, default_value_t = ports::loopback(ports::DASHBOARD))]
    addr: SocketAddr,
    /// A proxy's admin address to collect from (repeat for each).
    #[arg(long = "proxy")]
    proxies: Vec<String>,
    /// Collect from every address this DNS name (`host:port`) resolves to, at each scrape:
    /// on Kubernetes, the proxies' headless Service.
    #[arg(long, conflicts_with_all = ["proxies", "discovery_file"])]
    proxies_dns: Option<String>,
    /// Collect from every node named in this discovery file (at --admin-port).
    #[arg(long)]
    discovery_file: Option<PathBuf>,
    /// The admin port of the proxies named by --discovery-file.
    #[arg(long, default_value_t = ports::ADMIN)]
    admin_port: u16,
    /// Query this Prometheus instead of the proxies, e.g. http://127.0.0.1:9090.
    #[arg(long)]
    prometheus: Option<String>,
    /// The Prometheus job that scrapes the proxies.
    #[arg(long, default_value = "weft-proxies")]
    prometheus_job: String,
    #[arg(long, default_value = "2s", value_parser = duration::parse)]
    interval: Duration,
    /// History kept in memory.
    #[arg(long, default_value = "15m", value_parser = duration::parse)]
    history: Duration,
    /// Where the slowest requests' traces are linked to: a trace UI's URL with `{trace_id}`
    /// in it, e.g. http://jaeger.observability:16686/trace/{trace_id}.
    #[arg(long, env = "WEFT_TRACE_URL", value_parser = trace_url)]
    trace_url: Option<String>,
    #[command(flatten)]
    identity: crate::dashboard_identity::IdentityArgs,
    #[command(flatten)]
    keda: crate::keda_args::KedaArgs,
    #[command(flatten)]
    metrics_api: crate::metrics_api_args::MetricsApiArgs,
}

/// A trace UI's address: http(s), with `{trace_id}` where the id goes.
fn trace_url(v: &str) -> Result<String, String> {
    if !(v.starts_with("http://") || v.starts_with("https://")) || !v.contains("{trace_id}") {
        return Err("expected an http(s) URL with {trace_id} in it".into());
    }
    Ok(v.to_string())
}

pub fn dashboard(args: DashboardArgs) -> anyhow::Result<()> {
    let source = match args.prometheus {
        Some(url) => Source::Prometheus {
            url,
            job: args.prometheus_job,
        },
        None if args.proxies_dns.is_some() => {
            Source::ProxiesDns(args.proxies_dns.unwrap_or_default())
        }
        None => {
            let mut targets = args.proxies;
            if let Some(file) = &args.discovery_file {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let table = weft_discovery::Table::parse(file, &text)?;
                let mut nodes: Vec<String> = table
                    .services
                    .values()
                    .flat_map(|eps| eps.iter().filter_map(|e| e.node_proxy))
                    .map(|n| SocketAddr::new(n.ip(), args.admin_port).to_string())
                    .collect();
                nodes.sort();
                nodes.dedup();
                targets.extend(nodes);
            }
            anyhow::ensure!(
                !targets.is_empty(),
                "no proxies to collect from: pass --proxy, --discovery-file or --prometheus"
            );
            Source::Proxies(targets)
        }
    };
    let mut config = weft_dashboard::DashboardConfig {
        listen: args.addr,
        source,
        interval: args.interval,
        history: args.history,
        identity: None,
        keda: None,
        trace_url: args.trace_url,
        metrics_api: None,
    };
    run_until_signal(|stop| async move {
        config.identity = crate::dashboard_identity::start(args.identity)?;
        config.metrics_api = crate::metrics_api_args::start(args.metrics_api, stop.clone()).await?;
        config.keda = crate::keda_args::config(args.keda)?;
        let handle = weft_dashboard::start(config, stop).await?;
        println!("weft dashboard: http://{}", handle.addr);
        if let Some(keda) = handle.keda {
            println!("weft dashboard: KEDA external scaler on {keda}");
        }
        if let Some(api) = handle.metrics_api {
            println!("weft dashboard: external metrics API on https://{api}/apis/external.metrics.k8s.io/v1beta1");
        }
        for t in handle.tasks {
            let _ = t.await;
        }
        Ok(())
    })
}

/// Runs `f` on a runtime; SIGTERM or Ctrl-C turn its stop signal true.
fn run_until_signal<F, Fut>(f: F) -> anyhow::Result<()>
where
    F: FnOnce(watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let (tx, rx) = watch::channel(false);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tx.send_replace(true);
        });
        f(rx).await
    })
}
