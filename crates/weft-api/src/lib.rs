//! The control plane's APIs as Rust: the Destination API (proto/weft/destination/v1) and
//! the Identity API (proto/weft/identity/v1) — the generated messages and gRPC stubs, the
//! mapping between a Destination `Endpoint` and weft-core's, a service's routes on the
//! wire ([`routes`]), the [`channel`] proxies reach the control plane over and, with the
//! `server` feature, the TLS listener gRPC servers share ([`tls_incoming`]); and OTLP's
//! trace export ([`otlp`]) and KEDA's external scaler ([`keda`]), the APIs weft speaks that
//! are not its own.
#![forbid(unsafe_code)]

pub mod channel;
pub mod routes;
#[cfg(feature = "server")]
pub mod tls_incoming;

pub mod destination {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("weft.destination.v1");
}

pub mod identity {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("weft.identity.v1");
}

/// OTLP's trace export (proto/opentelemetry), which proxies send their spans over. The
/// modules mirror the proto packages: the generated code names its imports by relative path.
pub mod otlp {
    #![allow(clippy::all, clippy::pedantic)]
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("opentelemetry.proto.common.v1");
        }
    }
    pub mod resource {
        pub mod v1 {
            tonic::include_proto!("opentelemetry.proto.resource.v1");
        }
    }
    pub mod trace {
        pub mod v1 {
            tonic::include_proto!("opentelemetry.proto.trace.v1");
        }
    }
    pub mod collector {
        pub mod trace {
            pub mod v1 {
                tonic::include_proto!("opentelemetry.proto.collector.trace.v1");
            }
        }
    }
}

/// KEDA's external scaler interface (proto/keda), which the dashboard serves so KEDA can
/// scale on the mesh's figures. Its server side needs the `server` feature, as every
/// server here does.
pub mod keda {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("externalscaler");
}

use std::net::SocketAddr;

use weft_core::{Endpoint, Protocol};

pub use destination::destination_client::DestinationClient;
#[cfg(feature = "server")]
pub use destination::destination_server::{Destination, DestinationServer};
pub use destination::{update::Kind, GetDestination, Update};
pub use identity::identity_client::IdentityClient;
#[cfg(feature = "server")]
pub use identity::identity_server::{Identity, IdentityServer};
pub use identity::{CertifyRequest, CertifyResponse};

/// Why an endpoint from the wire was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad endpoint from the control plane: {0}")]
pub struct BadEndpoint(pub String);

pub fn to_wire(ep: &Endpoint) -> destination::Endpoint {
    destination::Endpoint {
        addr: ep.addr.to_string(),
        node_proxy: ep.node_proxy.map(|a| a.to_string()).unwrap_or_default(),
        protocol: match ep.protocol {
            Protocol::Http1 => destination::Protocol::Http1,
            Protocol::Http2 => destination::Protocol::Http2,
        } as i32,
        weight: ep.weight,
        labels: ep
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

pub fn from_wire(ep: destination::Endpoint) -> Result<Endpoint, BadEndpoint> {
    let addr: SocketAddr = ep
        .addr
        .parse()
        .map_err(|_| BadEndpoint(format!("address {:?}", ep.addr)))?;
    let node_proxy = if ep.node_proxy.is_empty() {
        None
    } else {
        Some(
            ep.node_proxy
                .parse()
                .map_err(|_| BadEndpoint(format!("node proxy {:?}", ep.node_proxy)))?,
        )
    };
    let protocol = match destination::Protocol::try_from(ep.protocol) {
        Ok(destination::Protocol::Http2) => Protocol::Http2,
        _ => Protocol::Http1,
    };
    Ok(Endpoint {
        addr,
        node_proxy,
        protocol,
        weight: ep.weight.max(1),
        labels: ep.labels.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_survives_the_wire() {
        let ep = Endpoint {
            addr: "10.0.0.7:8080".parse().unwrap(),
            node_proxy: Some("192.168.1.2:4141".parse().unwrap()),
            protocol: Protocol::Http2,
            weight: 3,
            labels: [("version".to_string(), "v2".to_string())].into(),
        };
        assert_eq!(from_wire(to_wire(&ep)).unwrap(), ep);
    }

    #[test]
    fn a_garbled_address_is_refused_not_guessed() {
        let mut wire = to_wire(&Endpoint {
            addr: "10.0.0.7:8080".parse().unwrap(),
            node_proxy: None,
            protocol: Protocol::Http1,
            weight: 1,
            labels: Default::default(),
        });
        wire.addr = "10.0.0.7".into();
        assert!(from_wire(wire).is_err());
    }
}
