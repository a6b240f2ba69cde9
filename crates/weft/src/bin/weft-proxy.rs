//! `weft-proxy`: the node proxy alone, as the DaemonSet runs it. Same flags and variables as
//! `weft proxy`; none of the other subcommands' code is linked in.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

// Per request the proxy allocates and frees buffers and futures larger than glibc's
// per-thread cache holds; mimalloc serves those from thread-local pages. Transparent huge
// pages stay off (`no_thp`): with them an idle proxy's heap grows by megabytes.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// weft's node proxy: outbound (:4140), inbound (:4141) and admin (:9990) listeners.
#[derive(Parser)]
#[command(name = "weft-proxy", version)]
struct Cli {
    #[command(flatten)]
    args: weft_cli::proxy::ProxyArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    weft_cli::init_logging();
    match weft_cli::proxy::run(cli.args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-proxy: {e:#}");
            ExitCode::FAILURE
        }
    }
}
