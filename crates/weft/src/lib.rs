//! What the `weft` and `weft-proxy` binaries share: the proxy's command line, and logging.
//! `weft-proxy` links only this and the proxy, so a node's proxy does not carry the control
//! plane, dashboard and demo in its resident code (about 3 MiB less at idle).
#![forbid(unsafe_code)]

pub mod proxy;

/// Logs to stderr, filtered by `WEFT_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
