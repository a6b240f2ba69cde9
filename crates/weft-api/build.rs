//! Compiles proto/ with protox (pure Rust), so no machine needs `protoc`. Server code only
//! with the `server` feature.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let files = [
        "weft/destination/v1/destination.proto",
        "weft/identity/v1/identity.proto",
        "opentelemetry/proto/collector/trace/v1/trace_service.proto",
        "keda/externalscaler.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={root}/{file}");
    }
    let fds = protox::compile(files, [root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(std::env::var_os("CARGO_FEATURE_SERVER").is_some())
        .compile_fds(fds)?;
    Ok(())
}
