//! The fuzz harnesses of every parser of outside input: one function per target that feeds
//! it bytes and checks a property of what comes out, not just that nothing panicked. The
//! AFL++ binaries (`src/bin/`, built by `scripts/fuzz` with the `afl` feature) call these,
//! and `tests/replay.rs` runs every corpus and regression file through them in the normal
//! `cargo test`.
//!
//! Layout:
//! - [`http1`]: HTTP/1 request and response heads and bodies, and chunked framing alone.
//! - [`mesh`]: the mesh's own headers: `weft-dst-service`, the deadline, override and hop
//!   count, and trace context.
//! - [`files`]: text read from files and queries: config, discovery, durations, label
//!   selectors, tap filters, metrics expositions.
//! - [`wire`]: binary messages: Destination API updates and routes, DNS answers.
//! - [`identity`]: peers' certificates and the SPIFFE IDs in them, signing requests.
#![forbid(unsafe_code)]

pub mod files;
pub mod http1;
pub mod identity;
pub mod mesh;
pub mod wire;

use http::{HeaderMap, HeaderName, HeaderValue};

pub use files::{config, discovery_file, duration, label_selector, metrics_text, tap_filter};
pub use http1::{h1_chunked, h1_request, h1_response};
pub use identity::{csr, peer_cert, spiffe_id};
pub use mesh::{ctx_deadline, ctx_hops, ctx_override, dst_service, trace_context};
pub use wire::{destination, destination_routes, dns_response};

/// A fuzz target: its name (of its binary, corpus and regressions) and its harness.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    ("h1_request", h1_request),
    ("h1_response", h1_response),
    ("h1_chunked", h1_chunked),
    ("dst_service", dst_service),
    ("ctx_deadline", ctx_deadline),
    ("ctx_override", ctx_override),
    ("ctx_hops", ctx_hops),
    ("trace_context", trace_context),
    ("tap_filter", tap_filter),
    ("config", config),
    ("discovery_file", discovery_file),
    ("destination", destination),
    ("destination_routes", destination_routes),
    ("metrics_text", metrics_text),
    ("dns_response", dns_response),
    ("label_selector", label_selector),
    ("duration", duration),
    ("spiffe_id", spiffe_id),
    ("peer_cert", peer_cert),
    ("csr", csr),
];

/// Reads the input as `name: value` lines, so header-shaped seeds stay readable; a line
/// whose name or value `http` refuses is skipped, as a peer's would have been refused.
pub fn headers_from(data: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    headers
}
