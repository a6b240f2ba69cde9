//! `weft-proxy`: the node proxy alone, as the DaemonSet runs it. The same flags, variables
//! and entry point as `weft proxy`; none of the other subcommands' code is linked in.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use weft_proxy::cli;

// Per request the proxy allocates and frees buffers and futures larger than glibc's
// per-thread cache holds; mimalloc serves those from thread-local pages. `weft` sets the
// same allocator, so what the tests run is what ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// weft's node proxy: outbound (:4140), inbound (:4141) and admin (:9990) listeners.
#[derive(Parser)]
#[command(name = "weft-proxy", version)]
struct Cli {
    #[command(flatten)]
    args: cli::ProxyArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging();
    match cli::run(cli.args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
