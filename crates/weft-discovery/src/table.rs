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
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;
use weft_core::source::{line_column, SourceError};
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
}

/// Services → endpoints, as one consistent snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub services: BTreeMap<ServiceName, EndpointSet>,
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
            services.insert(
                ServiceName::new(name.get_ref()),
                EndpointSet::new(endpoints, ports),
            );
        }
        Ok(Self { services })
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
