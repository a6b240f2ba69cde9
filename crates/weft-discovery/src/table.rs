//! A discovery document: services and their endpoints, parsed and checked with line numbers.
//!
//! ```toml
//! [services.world]
//! ports = [80, 7778]        # the ports the service is reached on; omit for any
//!
//! [[services.world.endpoints]]
//! addr = "127.0.0.2:7778"
//! node = "127.0.0.2:4141"   # the inbound proxy on that node; omit for no proxy
//! protocol = "http1"        # or "http2"
//! weight = 1
//! labels = { version = "v1" }
//!
//! [services.world-v1]
//! failover = ["zone-a", "zone-b"]   # endpoints of zone-b only while zone-a's all fail
//!
//! [[services.world.routes]]  # optional: requests for world go to other services
//! name = "split"
//! backends = [{ service = "world-v1", weight = 90 }, { service = "world-v2", weight = 10 }]
//! matches = [{ path = { prefix = "/" }, method = "GET" }]   # omit: every request
//! timeout = { total = "2s" }        # over the service's policy
//! retry = { max_retries = 1 }
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;
use std::sync::Arc;
use weft_core::source::{line_column, SourceError};

use weft_core::route::{RouteRule, Routes};
use weft_core::{Endpoint, EndpointSet, ServiceName};

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(#[from] SourceError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    services: BTreeMap<toml::Spanned<String>, ServiceEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceEntry {
    #[serde(default)]
    ports: Option<toml::Spanned<Vec<u16>>>,
    #[serde(default)]
    endpoints: Vec<toml::Spanned<Endpoint>>,
    #[serde(default)]
    routes: Vec<toml::Spanned<RouteRule>>,
    /// Zones in order of preference (the endpoints' `zone` label).
    #[serde(default)]
    failover: Vec<String>,
}

/// Services → endpoints, as one consistent snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub services: BTreeMap<ServiceName, EndpointSet>,
    /// Services whose requests go to other services, by rule.
    pub routes: BTreeMap<ServiceName, Arc<Routes>>,
}

impl Table {
    /// Parses a document; every error names `path`, the line and the cause.
    pub fn parse(path: &Path, text: &str) -> Result<Self, DiscoveryError> {
        let doc: Document =
            toml::from_str(text).map_err(|e| SourceError::from_toml(path, text, &e))?;
        let at = |offset: usize, cause: String| {
            let (line, column) = line_column(text, offset);
            DiscoveryError::Parse(SourceError {
                file: path.to_path_buf(),
                line,
                column,
                cause,
            })
        };
        let mut services = BTreeMap::new();
        let mut routes = BTreeMap::new();
        let names: HashSet<ServiceName> = doc
            .services
            .keys()
            .map(|n| ServiceName::new(n.get_ref()))
            .collect();
        for (name, entry) in doc.services {
            let valid = !name.get_ref().is_empty()
                && name
                    .get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
            if !valid {
                return Err(at(
                    name.span().start,
                    format!("invalid service name {:?}", name.get_ref()),
                ));
            }
            let mut seen = HashSet::new();
            let mut endpoints = Vec::with_capacity(entry.endpoints.len());
            for ep in entry.endpoints {
                let start = ep.span().start;
                let ep = ep.into_inner();
                if ep.weight == 0 {
                    return Err(at(
                        start,
                        format!("endpoint {}: weight must be at least 1", ep.addr),
                    ));
                }
                if !seen.insert(ep.addr) {
                    return Err(at(start, format!("endpoint {} is listed twice", ep.addr)));
                }
                endpoints.push(ep);
            }
            let ports = match entry.ports {
                Some(ports) if ports.get_ref().contains(&0) => {
                    return Err(at(ports.span().start, "port 0 is no port".to_string()));
                }
                Some(ports) => ports.into_inner(),
                None => Vec::new(),
            };
            let service = ServiceName::new(name.get_ref());
            if !entry.routes.is_empty() {
                let mut rules = Vec::with_capacity(entry.routes.len());
                for rule in entry.routes {
                    let start = rule.span().start;
                    let rule = rule.into_inner();
                    let named = |e: String| at(start, format!("route {:?}: {e}", rule.name));
                    rule.check().map_err(named)?;
                    if let Some(b) = rule.backends.iter().find(|b| !names.contains(&b.service)) {
                        return Err(named(format!(
                            "backend {} is no service in this file",
                            b.service
                        )));
                    }
                    rules.push(rule);
                }
                let checked = Routes::new(rules).map_err(|e| at(name.span().start, e))?;
                routes.insert(service.clone(), Arc::new(checked));
            }
            let set = EndpointSet::new(endpoints, ports).with_failover(entry.failover);
            services.insert(service, set);
        }
        Ok(Self { services, routes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_parses_into_services() {
        let text = r#"
[[services.world.endpoints]]
addr = "127.0.0.2:7778"
node = "127.0.0.2:4141"
labels = { version = "v1" }

[[services.world.endpoints]]
addr = "127.0.0.3:7778"
protocol = "http2"
weight = 3
"#;
        let t = Table::parse(Path::new("d.toml"), text).unwrap();
        let world = &t.services[&ServiceName::new("world")];
        assert_eq!(world.len(), 2);
        assert_eq!(world[0].labels["version"], "v1");
        assert_eq!(world[1].weight, 3);
        assert!(world[1].node_proxy.is_none());
    }

    #[test]
    fn a_service_may_say_its_ports() {
        let text = "[services.world]\nports = [80, 7778]\n\n[[services.world.endpoints]]\naddr = \"127.0.0.2:7778\"\n\n[[services.hello.endpoints]]\naddr = \"127.0.0.2:7777\"\n";
        let t = Table::parse(Path::new("d.toml"), text).unwrap();
        let world = &t.services[&ServiceName::new("world")];
        assert_eq!(world.ports(), [80, 7778]);
        assert!(world.has_port(80) && !world.has_port(81));
        // Ports left out: the service is reached on any.
        assert!(t.services[&ServiceName::new("hello")].has_port(81));
        let zero = "[services.world]\nports = [0]\n";
        let err = Table::parse(Path::new("d.toml"), zero)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("d.toml:2:") && err.contains("port 0"),
            "{err}"
        );
    }

    #[test]
    fn routes_send_a_service_to_others() {
        let text = r#"
[[services.world.routes]]
name = "split"
backends = [{ service = "world-v1", weight = 90 }, { service = "world-v2", weight = 10 }]

[[services.world-v1.endpoints]]
addr = "127.0.0.2:7778"

[services.world-v2]
"#;
        let t = Table::parse(Path::new("d.toml"), text).unwrap();
        let routes = &t.routes[&ServiceName::new("world")];
        assert_eq!(routes.rules()[0].backends[1].weight, 10);
        assert!(t.services[&ServiceName::new("world")].is_empty());
    }

    #[test]
    fn a_bad_route_names_its_line() {
        let unknown = "[services.world-v1]\n\n[[services.world.routes]]\nname = \"r\"\nbackends = [{ service = \"world-v9\" }]\n";
        let err = Table::parse(Path::new("d.toml"), unknown)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("d.toml:3:") || err.starts_with("d.toml:4:"),
            "{err}"
        );
        assert!(err.contains("world-v9 is no service"), "{err}");
        let zero = "[services.v1]\n[[services.world.routes]]\nname = \"r\"\nbackends = [{ service = \"v1\", weight = 0 }]\n";
        let err = Table::parse(Path::new("d.toml"), zero)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sum to 0"), "{err}");
        let bad_match = "[services.v1]\n[[services.world.routes]]\nname = \"r\"\nbackends = [{ service = \"v1\" }]\nmatches = [{ path = { regex = \"x\" } }]\n";
        let err = Table::parse(Path::new("d.toml"), bad_match)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("d.toml:5:"), "{err}");
    }

    #[test]
    fn semantic_errors_name_the_line() {
        let text = "[[services.world.endpoints]]\naddr = \"127.0.0.2:1\"\n\n[[services.world.endpoints]]\naddr = \"127.0.0.2:1\"\n";
        let err = Table::parse(Path::new("d.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("d.toml:4:") || err.starts_with("d.toml:5:"),
            "{err}"
        );
        assert!(err.contains("listed twice"), "{err}");
    }

    #[test]
    fn a_bad_address_names_the_line() {
        let text = "[[services.world.endpoints]]\naddr = \"nowhere\"\n";
        let err = Table::parse(Path::new("d.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("d.toml:2:"), "{err}");
    }
}
