//! The demo: the hello/world app, a traffic generator, and `weft demo`, which runs the whole
//! mesh — proxies on loopback "nodes", the apps, traffic and the dashboard — on one machine.
//!
//! Layout:
//! - [`app`]: `weft hello-world`, one app for both roles, with run-time latency and failures.
//! - [`grpc`]: the world app's gRPC `Greet`, and `weft greet`, which calls it through a
//!   tunnel as a gRPC app behind `http_proxy` does.
//! - [`mesh_ca`]: the demo's own CA, which gives each node's proxy its identity.
//! - [`proxy_client`]: how the app and the generator reach a node proxy (as `http_proxy`).
//! - [`traffic`]: an open-loop generator that keeps its own counts, its rate changeable at
//!   run time (`POST /traffic`).
//! - [`demo`]: starts every part, prints how to use it, stops every part on Ctrl-C.
//! - [`discovery`]: the discovery files the demo writes for its proxies.
//! - [`fleet`]: world's instances, added and removed while traffic flows.
//! - [`autoscaler`]: `--autoscale`, the HPA's algorithm on the dashboard's figures.
#![forbid(unsafe_code)]

pub mod app;
pub mod autoscaler;
pub mod demo;
mod discovery;
mod fleet;
pub mod grpc;
pub mod mesh_ca;
pub mod proxy_client;
pub mod traffic;
