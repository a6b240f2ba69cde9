//! `weft demo`: the whole mesh on one machine, no Kubernetes. Each loopback address is a
//! "node" with its own proxy, a hello and a world instance; generated discovery files tie
//! them together; a traffic generator keeps it busy (its rate changeable at run time); the
//! dashboard shows it all; with `--autoscale`, world's instances follow the load.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use weft_core::config::ProxyConfig;
use weft_core::duration;
use weft_dashboard::source::Source;
use weft_dashboard::DashboardConfig;
use weft_proxy::proxy::StartError;
use weft_proxy::{Proxy, ProxyHandle};

use crate::app::{self, AppConfig};
use crate::autoscaler::{self, Autoscale, Hpa};
use crate::discovery::{Files, Shape};
use crate::fleet::{Fleet, FleetNode};
use crate::proxy_client::ProxyClient;
use crate::traffic::{self, Counts};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot listen on {addr} ({what}): {cause}{hint}")]
    Bind {
        what: String,
        addr: SocketAddr,
        cause: std::io::Error,
        hint: &'static str,
    },
    #[error("{0}")]
    Proxy(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

#[derive(Clone, Debug)]
pub struct DemoConfig {
    pub node_ips: Vec<IpAddr>,
    pub outbound_port: u16,
    pub inbound_port: u16,
    pub admin_port: u16,
    pub hello_port: u16,
    pub world_port: u16,
    /// The first node's proxy takes outside traffic for hello on this port.
    pub ingress_port: u16,
    pub hello_instances: usize,
    pub world_instances: usize,
    pub dashboard: SocketAddr,
    pub scrape_interval: Duration,
    pub rps: f64,
    pub world_failure_rate: f64,
    pub world_latency: Vec<Latency>,
    /// Whether proxies retry failed requests (off by default here, so the failures the
    /// flags inject show on the dashboard as they happen).
    pub retries: bool,
    /// Whether the hop between proxies is plaintext (mutual TLS otherwise, the default).
    pub plaintext: bool,
    /// A second version of world, `world-v2`, one instance per node: then `world` is split
    /// between `world-v1` (its first instances) and `world-v2` by a route, all to v1 at
    /// first, for `weft shift` to move.
    pub world_v2: Option<WorldV2>,
    /// Where every proxy sends its spans (OTLP/gRPC), with tracing on, and the share of
    /// new traces sampled.
    pub otlp: Option<String>,
    pub trace_sample_rate: f64,
    /// Where the dashboard links a trace to (`{trace_id}` in it).
    pub trace_url: Option<String>,
    /// The traffic control's port on the first node (`GET`/`POST /traffic`; 0: any free).
    pub traffic_control_port: u16,
    /// world's instances follow its load, as an HPA would set them.
    pub autoscale: Option<AutoscaleConfig>,
}

/// `--autoscale`: the target and bounds, how often the autoscaler decides, and how long a
/// lower proposal must hold before instances go.
#[derive(Clone, Debug)]
pub struct AutoscaleConfig {
    pub spec: Autoscale,
    pub interval: Duration,
    pub stabilization: Duration,
}

#[derive(Clone, Debug, Default)]
pub struct WorldV2 {
    pub failure_rate: f64,
    pub latency: Duration,
}

/// `--world-latency 50ms` (every world instance) or `node-2=50ms` (those on node 2).
#[derive(Clone, Debug, PartialEq)]
pub struct Latency {
    pub node: Option<String>,
    pub delay: Duration,
}

impl std::str::FromStr for Latency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((node, d)) => Ok(Self {
                node: Some(node.trim().to_string()),
                delay: duration::parse(d)?,
            }),
            None => Ok(Self {
                node: None,
                delay: duration::parse(s)?,
            }),
        }
    }
}

impl DemoConfig {
    fn latency_for(&self, node: &str) -> Duration {
        self.world_latency
            .iter()
            .rev()
            .find(|l| l.node.as_deref().is_none_or(|n| n == node))
            .map_or(Duration::ZERO, |l| l.delay)
    }
}

struct Node {
    name: String,
    proxy: ProxyHandle,
    hello: Vec<SocketAddr>,
    world_v2: Vec<SocketAddr>,
}

pub(crate) fn port_plus(port: u16, i: usize) -> u16 {
    if port == 0 {
        0
    } else {
        port.saturating_add(i as u16)
    }
}

pub(crate) async fn bind(what: String, addr: SocketAddr) -> Result<TcpListener, DemoError> {
    TcpListener::bind(addr)
        .await
        .map_err(|cause| DemoError::Bind {
            hint: hint(&cause),
            what,
            addr,
            cause,
        })
}

fn hint(cause: &std::io::Error) -> &'static str {
    match cause.kind() {
        std::io::ErrorKind::AddrInUse => " (is another weft demo running? see --help for port flags)",
        std::io::ErrorKind::AddrNotAvailable => {
            " (this address is not on this machine: add it to the loopback interface or pick others with --node-ips)"
        }
        _ => "",
    }
}

/// Runs the demo until `stop` turns true, printing what runs where to stdout.
pub async fn run(config: DemoConfig, stop: watch::Receiver<bool>) -> Result<(), DemoError> {
    let dir = std::env::temp_dir().join(format!("weft-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let discovery = dir.join("discovery.toml");
    std::fs::write(&discovery, "")?;
    let result = run_in(&config, &discovery, stop).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(
    config: &DemoConfig,
    discovery: &PathBuf,
    stop: watch::Receiver<bool>,
) -> Result<(), DemoError> {
    // The autoscaler lists an instance in one node's file before the others' (`fleet`);
    // otherwise every proxy reads the one file `weft shift` edits.
    let files = match (&config.autoscale, discovery.parent()) {
        (Some(_), Some(dir)) => Files::per_node(dir, config.node_ips.len()),
        _ => Files::Shared(discovery.clone()),
    };
    if let Files::PerNode(paths) = &files {
        for p in paths {
            std::fs::write(p, "")?;
        }
    }
    let mut nodes = Vec::new();
    let ca = (!config.plaintext)
        .then(crate::mesh_ca::MeshCa::new)
        .transpose()
        .map_err(|e| DemoError::Proxy(format!("the demo's certificate authority: {e}")))?
        .map(Arc::new);
    let mut certified = Vec::new();
    for (i, ip) in config.node_ips.iter().enumerate() {
        let name = format!("node-{}", i + 1);
        let identity = ca
            .as_ref()
            .map(|ca| ca.certify(&name))
            .transpose()
            .map_err(|e| DemoError::Proxy(format!("{name}'s identity: {e}")))?;
        certified.extend(identity.as_ref().map(|id| Arc::clone(&id.credentials)));
        let mut pc = ProxyConfig {
            node: name.clone(),
            ..Default::default()
        };
        pc.outbound.listen = SocketAddr::new(*ip, config.outbound_port);
        pc.inbound.listen = SocketAddr::new(*ip, config.inbound_port);
        pc.admin.listen = SocketAddr::new(*ip, config.admin_port);
        pc.discovery.file = Some(files.of_node(i).to_path_buf());
        pc.http.shutdown_grace = Duration::from_secs(2);
        // The first node is also the mesh's edge: outside callers reach hello there.
        if i == 0 {
            pc.ingress = demo_ingress(SocketAddr::new(*ip, config.ingress_port));
        }
        // The demo's proxies pass each other's staging overrides to their apps.
        if let Some(ca) = &ca {
            pc.context.override_peers = vec![ca.proxy_pattern()];
        }
        if !config.retries {
            pc.resilience.retry.max_retries = Some(0);
        }
        pc.tracing.otlp = config.otlp.clone();
        pc.tracing.sample_rate = config.trace_sample_rate;
        // Someone watching the demo sees a request's spans within the second.
        pc.tracing.batch_interval = Duration::from_secs(1);
        let proxy = Proxy::start_with_identity(pc, identity)
            .await
            .map_err(|e| match e {
                StartError::Bind {
                    listener,
                    addr,
                    source,
                } => DemoError::Bind {
                    what: format!("{name} proxy {listener}"),
                    addr,
                    hint: hint(&source),
                    cause: source,
                },
                other => DemoError::Proxy(other.to_string()),
            })?;
        let mut node = Node {
            name: name.clone(),
            hello: Vec::new(),
            world_v2: Vec::new(),
            proxy,
        };
        if let Some(v2) = &config.world_v2 {
            let port = port_plus(config.world_port, config.world_instances);
            let l = bind(format!("{name} world-v2"), SocketAddr::new(*ip, port)).await?;
            node.world_v2.push(l.local_addr()?);
            let app = AppConfig {
                text: "world v2".into(),
                target: None,
                proxy: None,
                latency: v2.latency,
                failure_rate: v2.failure_rate,
            };
            tokio::spawn(app::serve(l, app, stop.clone()));
        }
        for j in 0..config.hello_instances {
            let addr = SocketAddr::new(*ip, port_plus(config.hello_port, j));
            let l = bind(format!("{name} hello"), addr).await?;
            node.hello.push(l.local_addr()?);
            let app = AppConfig {
                text: "Hello".into(),
                target: Some("world".into()),
                proxy: Some(node.proxy.outbound),
                latency: Duration::ZERO,
                failure_rate: 0.0,
            };
            tokio::spawn(app::serve(l, app, stop.clone()));
        }
        nodes.push(node);
    }

    let dashboard_identity = ca
        .as_ref()
        .map(|ca| ca.certify_dashboard())
        .transpose()
        .map_err(|e| DemoError::Proxy(format!("the dashboard's identity: {e}")))?;
    certified.extend(
        dashboard_identity
            .as_ref()
            .map(|id| Arc::clone(&id.credentials)),
    );
    if let Some(ca) = &ca {
        tokio::spawn(Arc::clone(ca).renew(certified, stop.clone()));
    }
    let fleet_nodes = nodes
        .iter()
        .zip(&config.node_ips)
        .map(|(n, ip)| FleetNode {
            name: n.name.clone(),
            ip: *ip,
            inbound: n.proxy.inbound,
            admin: n.proxy.admin,
            hello: n.hello.clone(),
            world_v2: n.world_v2.clone(),
            app: AppConfig {
                text: "world".into(),
                target: None,
                proxy: None,
                latency: config.latency_for(&n.name),
                failure_rate: config.world_failure_rate,
            },
        })
        .collect();
    let shape = Shape {
        hello_port: config.hello_port,
        world_port: config.world_port,
        split: config.world_v2.is_some(),
    };
    let mut fleet = Fleet::new(fleet_nodes, files, shape);
    fleet.start(initial_world(config)).await?;
    for n in &nodes {
        wait_for_services(n.proxy.admin).await;
    }

    let dashboard = weft_dashboard::start(
        DashboardConfig {
            listen: config.dashboard,
            source: Source::Proxies(nodes.iter().map(|n| n.proxy.admin.to_string()).collect()),
            interval: config.scrape_interval,
            history: Duration::from_secs(15 * 60),
            identity: dashboard_identity.map(crate::mesh_ca::shown),
            trace_url: config.trace_url.clone(),
            keda: None,
            metrics_api: None,
        },
        stop.clone(),
    )
    .await
    .map_err(|e| DemoError::Bind {
        what: "dashboard".into(),
        addr: e.addr,
        hint: hint(&e.source),
        cause: e.source,
    })?;

    let counts = Arc::new(Counts::default());
    let clients = nodes
        .iter()
        .map(|n| Arc::new(ProxyClient::new(n.proxy.outbound)))
        .collect();
    let (rate, rate_rx) = watch::channel(config.rps);
    let first_ip = config
        .node_ips
        .first()
        .copied()
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let control_at = SocketAddr::new(first_ip, config.traffic_control_port);
    let control = bind("traffic control".into(), control_at).await?;
    let control_at = control.local_addr()?;
    tokio::spawn(traffic::serve_control(
        control,
        Arc::new(rate),
        Arc::clone(&counts),
        stop.clone(),
    ));
    tokio::spawn(traffic::run(
        clients,
        "hello".into(),
        rate_rx,
        Arc::clone(&counts),
        stop.clone(),
    ));

    let worlds: Vec<_> = (0..nodes.len()).map(|i| fleet.on_node(i)).collect();
    let shown = Shown {
        nodes: &nodes,
        worlds: &worlds,
        dashboard: dashboard.addr,
        discovery,
        traffic_control: control_at,
    };
    println!("{}", banner(config, &shown));
    // The autoscaler owns world's instances from here; without it they stay as they are.
    let _kept = match &config.autoscale {
        Some(a) => {
            let start = fleet.count();
            let hpa = Hpa::new(
                a.spec.clone(),
                a.stabilization,
                tokio::time::Instant::now(),
                start,
            );
            let window = autoscaler::window(a.interval, config.scrape_interval);
            tokio::spawn(autoscaler::run(
                hpa,
                a.interval,
                window,
                Arc::clone(&dashboard.shared),
                fleet,
                stop.clone(),
            ));
            None
        }
        None => Some(fleet),
    };

    let mut stop = stop;
    let _ = stop.wait_for(|s| *s).await;
    println!(
        "weft demo: stopping (traffic sent {}, ok {}, failed {})",
        counts.sent.load(std::sync::atomic::Ordering::Relaxed),
        counts.ok.load(std::sync::atomic::Ordering::Relaxed),
        counts.failed.load(std::sync::atomic::Ordering::Relaxed),
    );
    for n in &nodes {
        n.proxy.shutdown();
    }
    // The dashboard stops with them: nothing would collect a final scrape.
    for n in nodes {
        n.proxy.without_final_scrape().wait().await;
    }
    for t in dashboard.tasks {
        let _ = t.await;
    }
    Ok(())
}

/// How many world instances run at first: `--world-instances` on each node; with the
/// autoscaler, that many in all (within its bounds), spread over the nodes, as a
/// Deployment's replicas are before its HPA first acts.
fn initial_world(config: &DemoConfig) -> usize {
    match &config.autoscale {
        Some(a) => config.world_instances.clamp(a.spec.min, a.spec.max),
        None => config.world_instances * config.node_ips.len(),
    }
}

/// Waits (up to 5 s) until a proxy's admin API lists both demo services.
async fn wait_for_services(admin: SocketAddr) {
    let url = format!("http://{admin}/endpoints");
    for _ in 0..250 {
        if let Ok(body) = weft_dashboard::fetch::get(&url, Duration::from_secs(1)).await {
            let text = String::from_utf8_lossy(&body);
            if text.contains("\"hello\"") && text.contains("\"world\"") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!(%admin, "proxy did not list the demo services in time");
}

/// An ingress that sends every request, for any host, to hello.
fn demo_ingress(listen: SocketAddr) -> weft_core::config::IngressConfig {
    let all = weft_core::route::RouteRule {
        name: "hello".into(),
        matches: vec![],
        backends: vec![weft_core::route::Backend {
            service: weft_core::ServiceName::new("hello"),
            weight: 1,
        }],
        timeout: Default::default(),
        retry: Default::default(),
    };
    weft_core::config::IngressConfig {
        listen: Some(listen),
        hosts: vec![weft_core::config::IngressHost {
            names: vec!["*".into()],
            routes: vec![all],
        }],
        ..Default::default()
    }
}

/// What the banner shows of what runs.
struct Shown<'a> {
    nodes: &'a [Node],
    /// world's instances on each node.
    worlds: &'a [Vec<SocketAddr>],
    dashboard: SocketAddr,
    discovery: &'a Path,
    traffic_control: SocketAddr,
}

fn banner(config: &DemoConfig, shown: &Shown<'_>) -> String {
    let Shown {
        nodes,
        worlds,
        dashboard,
        discovery,
        traffic_control,
    } = *shown;
    let mut b = String::new();
    let _ = writeln!(
        b,
        "weft demo: a {}-node mesh on this machine\n",
        nodes.len()
    );
    let _ = writeln!(
        b,
        "  {:<8} {:<22} {:<22} {:<22} apps",
        "node", "outbound", "inbound", "admin"
    );
    for (n, world) in nodes.iter().zip(worlds) {
        let apps: Vec<String> = n
            .hello
            .iter()
            .map(|a| format!("hello {a}"))
            .chain(world.iter().map(|a| format!("world {a}")))
            .chain(n.world_v2.iter().map(|a| format!("world-v2 {a}")))
            .collect();
        let _ = writeln!(
            b,
            "  {:<8} {:<22} {:<22} {:<22} {}",
            n.name,
            n.proxy.outbound,
            n.proxy.inbound,
            n.proxy.admin,
            apps.join(", ")
        );
    }
    let _ = writeln!(
        b,
        "\n  traffic:   {} requests/s to hello, spread over the nodes' proxies",
        config.rps
    );
    let _ = writeln!(
        b,
        "  traffic control: http://{traffic_control}/traffic (GET: the rate and the generator's counts; POST rps=N: a new rate)"
    );
    if let Some(a) = &config.autoscale {
        let _ = writeln!(
            b,
            "  autoscale: world to {} requests/s per instance, {} to {} instances (deciding every {}, down after {} of lower proposals)",
            a.spec.target,
            a.spec.min,
            a.spec.max,
            duration::format(&a.interval),
            duration::format(&a.stabilization),
        );
    }
    let _ = writeln!(
        b,
        "  retries:   {}",
        if config.retries {
            "on (hello's success rate recovers from world's failures; `weft stat -o wide` shows what they hide)"
        } else {
            "off (--retries turns them on)"
        }
    );
    let _ = writeln!(
        b,
        "  between nodes: {}",
        if config.plaintext {
            "plaintext HTTP/2 (--plaintext)"
        } else {
            "mutual TLS 1.3, each proxy with its node's identity from the demo's own CA (in memory)"
        }
    );
    let _ = writeln!(b, "  dashboard: http://{dashboard}");
    let _ = writeln!(
        b,
        "  tracing:   {}",
        match &config.otlp {
            Some(otlp) => format!(
                "spans to {otlp} over OTLP ({} % of traces, and every failed or slow request)",
                config.trace_sample_rate * 100.0
            ),
            None => "off (--otlp HOST:PORT sends spans to a collector)".into(),
        }
    );
    if let Some(ingress) = nodes.first().and_then(|n| n.proxy.ingress) {
        let _ = writeln!(
            b,
            "  ingress:   http://{ingress} (to hello, as from outside the mesh: weft-* headers stripped)"
        );
    }
    let first = nodes
        .first()
        .map(|n| n.proxy.outbound.to_string())
        .unwrap_or_default();
    let _ = writeln!(b, "\ntry:\n  curl -x {first} http://hello/");
    let _ = writeln!(
        b,
        "  curl -p -x {first} http://hello/     # through a tunnel, as gRPC and HTTPS apps behind http_proxy connect"
    );
    // With ephemeral ports any port names the service; 80 is the one that reads naturally.
    let world_port = if config.world_port == 0 {
        80
    } else {
        config.world_port
    };
    let _ = writeln!(
        b,
        "  weft greet world:{world_port} --proxy {first}   # a gRPC call to world, the same way"
    );
    let _ = writeln!(b, "  weft stat --dashboard http://{dashboard}");
    let _ = writeln!(
        b,
        "  curl -X POST 'http://{traffic_control}/traffic?rps=50'   # a step in load{}",
        if config.autoscale.is_some() {
            ": world's instances follow (the dashboard charts them)"
        } else {
            " (--autoscale world=10rps lets world's instances follow it)"
        }
    );
    if config.world_v2.is_some() {
        let _ = writeln!(
            b,
            "  weft shift world --to world-v2 --discovery-file {} --dashboard http://{dashboard}   # a canary rollout, judged by the mesh",
            discovery.display()
        );
        let _ = writeln!(
            b,
            "  curl -x {first} -H 'weft-ctx-override: world => world-v2' http://hello/   # staging: this call's world is world-v2"
        );
    }
    if let Some(ingress) = nodes.first().and_then(|n| n.proxy.ingress) {
        let _ = writeln!(
            b,
            "  curl http://{ingress}/   # from outside, through the ingress"
        );
    }
    let _ = writeln!(b, "\nCtrl-C stops everything.");
    b
}
