//! The `weft` binary: command-line parsing and wiring only; the work lives in the crates.
#![forbid(unsafe_code)]

mod check_cmd;
mod control_cmd;
mod dashboard_identity;
mod demo_cmd;
mod identity_cmd;
mod install_cmd;
mod keda_args;
mod metrics_api_args;
mod shift;
mod stat_cmd;
mod tap_cmd;
mod tap_source;
mod top;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use weft_proxy::cli as proxy;

// The proxy's allocator, for every subcommand: `weft proxy` (which most end-to-end tests
// run) is then the same program as the `weft-proxy` that ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// weft: a service mesh. Top-line metrics, resilience and routing for every HTTP call.
#[derive(Parser)]
#[command(name = "weft", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node proxy: outbound (:4140), inbound (:4141) and admin (:9990) listeners.
    Proxy(Box<proxy::ProxyArgs>),
    /// Run an ingress: a proxy taking traffic from outside the mesh (--ingress, TLS from
    /// files) and routing it by host and path to mesh services.
    Ingress(Box<proxy::ProxyArgs>),
    /// Check the mesh on a Kubernetes cluster: control plane, every node's proxy, dashboard.
    Check(check_cmd::CheckArgs),
    /// Run the control plane: watch Kubernetes (or a discovery file), serve the Destination
    /// API (:8086) and, with identity on, sign proxies' certificates.
    Control(control_cmd::ControlArgs),
    /// Run the whole mesh on this machine: proxies on loopback nodes, hello/world, traffic,
    /// and the dashboard.
    Demo(demo_cmd::DemoArgs),
    /// Serve the dashboard: collect metrics from proxies (or Prometheus), show them.
    Dashboard(Box<demo_cmd::DashboardArgs>),
    /// The mesh's CA material and bootstrap tokens, for a control plane outside Kubernetes.
    Identity(identity_cmd::IdentityArgs),
    /// Print the Kubernetes manifests that install the mesh (pipe to `kubectl apply -f -`).
    Install(install_cmd::InstallArgs),
    /// Show success rate, request volume and latency per service, instance or route.
    Stat(stat_cmd::StatArgs),
    /// Watch requests live, one line per event (request, response headers, end), from
    /// the dashboard or straight from proxies.
    Tap(tap_cmd::TapArgs),
    /// A live table of the requests flowing now, per source, destination, method and path:
    /// counts, success rate and latency percentiles, sortable.
    Top(top::TopArgs),
    /// Move a service's traffic to a new backend step by step (a canary rollout), judged
    /// by the mesh's own figures; rolled back at once if it fails.
    Shift(shift::ShiftArgs),
    /// The demo app: answers "Hello (IP) world (IP)!!" by calling its target.
    HelloWorld(demo_cmd::HelloWorldArgs),
    /// A gRPC call to the demo's world through a proxy, as a gRPC app with http_proxy makes
    /// it (a CONNECT tunnel, HTTP/2 inside).
    Greet(demo_cmd::GreetArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    proxy::init_logging();
    let result = match cli.command {
        // Exits 1 for problems it found in the cluster, which are not errors of its own.
        Command::Check(args) => return exit(check_cmd::run(args)),
        Command::Proxy(args) => proxy::run(*args).map_err(anyhow::Error::from),
        Command::Ingress(args) => proxy::run_ingress(*args).map_err(anyhow::Error::from),
        Command::Control(args) => control_cmd::run(args),
        Command::Demo(args) => demo_cmd::demo(args),
        Command::Dashboard(args) => demo_cmd::dashboard(*args),
        Command::Identity(args) => identity_cmd::run(args),
        Command::Install(args) => install_cmd::run(args),
        Command::Stat(args) => stat_cmd::stat(args),
        Command::Tap(args) => tap_cmd::run(args),
        Command::Top(args) => top::run(args),
        Command::Shift(args) => shift::run(args),
        Command::HelloWorld(args) => demo_cmd::hello_world(args),
        Command::Greet(args) => demo_cmd::greet(args),
    };
    exit(result.map(|()| ExitCode::SUCCESS))
}

fn exit(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("weft: {e:#}");
        ExitCode::FAILURE
    })
}
