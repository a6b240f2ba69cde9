//! End-to-end tests: real `weft proxy` processes on loopback "nodes", real backends and
//! real clients (curl, hyper, grpcio, tungstenite).

mod autoscaling_demo;
mod autoscaling_keda;
mod check;
mod dashboard;
mod deadlines;
mod demo;
mod edges;
mod egress;
mod errors;
mod grpc;
mod hardening;
mod http;
mod http1;
mod identity;
mod install;
mod kubernetes;
mod lifecycle;
mod metrics;
mod metrics_api;
mod mtls;
mod resilience;
mod retries;
mod routing;
mod shift;
mod tap;
mod tap_cli;
mod tracing;
mod tunnel;
mod websocket;
