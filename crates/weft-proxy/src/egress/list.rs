//! The egress list as each request's checks read it — which hosts, which ports, how —
//! and the connection pools of the hosts reached in TLS, built once from config.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use weft_core::config::{EgressConfig, EgressHost, HttpConfig, SYSTEM_ROOTS};
use weft_http::client::{Connector, H1Pool, OriginTls};

use super::discovery::tunnel_name;
use crate::FastMap;

/// How long a TLS connection to a host outside the mesh idles in its pool at most.
const ORIGIN_IDLE: Duration = Duration::from_secs(30);

/// The egress list as the request's checks read it, and the pools of the hosts reached in
/// TLS.
#[derive(Default)]
pub(crate) struct EgressList {
    hosts: FastMap<String, EgressHost>,
    /// Every egress service name, with the pool of those reached in TLS.
    outside: Arc<Outside>,
}

/// Egress services by name: their endpoints are outside the mesh, and those of hosts
/// reached in TLS go through a pool of their own.
pub(crate) type Outside = FastMap<String, Option<Arc<H1Pool>>>;

impl EgressList {
    pub(crate) fn new(config: &EgressConfig, http: &HttpConfig) -> Result<Self, String> {
        let hosts: FastMap<String, EgressHost> = config
            .hosts
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.clone()))
            .collect();
        let mut outside = Outside::default();
        for (name, host) in &hosts {
            for port in &host.connect_ports {
                outside.insert(tunnel_name(name, *port), None);
            }
            if host.http_port().is_none() {
                continue;
            }
            let pool = match host.tls {
                true => {
                    let origin = origin_tls(name, host.tls_ca.as_deref())?;
                    let connector = Connector {
                        origin: Some(origin),
                        ..Connector::plain(http.connect_timeout)
                    };
                    // Idle no longer than a server is likely to keep it: a connection it
                    // closed in the meantime costs a resend.
                    let idle = http.pool_idle_timeout.min(ORIGIN_IDLE);
                    Some(H1Pool::new(connector, idle, http.pool_max_idle))
                }
                false => None,
            };
            outside.insert(name.clone(), pool);
        }
        Ok(Self {
            hosts,
            outside: Arc::new(outside),
        })
    }

    /// The listed host `name` names, if any.
    pub(crate) fn host(&self, name: &str) -> Option<&EgressHost> {
        // Every listed name has a dot; mesh services' names seldom do.
        if self.hosts.is_empty() || !name.contains('.') {
            return None;
        }
        self.hosts.get(name)
    }

    /// Every egress service, by name.
    pub(crate) fn outside(&self) -> Arc<Outside> {
        Arc::clone(&self.outside)
    }
}

/// The TLS a host's pool starts: its name sent and checked against the roots in `ca` (the
/// system's by default), HTTP/1.1 by ALPN.
fn origin_tls(host: &str, ca: Option<&Path>) -> Result<OriginTls, String> {
    let ca = ca.unwrap_or(Path::new(SYSTEM_ROOTS));
    let text = std::fs::read_to_string(ca)
        .map_err(|e| format!("egress host {host}: roots {}: {e}", ca.display()))?;
    let certs = weft_identity::material::certificates(&text)
        .map_err(|e| format!("egress host {host}: roots {}: {e}", ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "egress host {host}: {} holds no usable root",
            ca.display()
        ));
    }
    let mut config = rustls::ClientConfig::builder_with_provider(weft_identity::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![weft_identity::tls::ALPN_HTTP1.to_vec()];
    let name =
        ServerName::try_from(host.to_string()).map_err(|e| format!("egress host {host}: {e}"))?;
    Ok(OriginTls {
        config: Arc::new(config),
        name,
    })
}
