//! Requests that reached the inbound from peer proxies, by how they came: over mutual TLS,
//! with the peer's identity, or in plaintext (a mesh without identities, or one moving to
//! TLS). The dashboard's top line shows the mutual TLS share from these.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::names::family;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    /// `mutual` or `none`.
    tls: &'static str,
    /// The peer's identity; empty in plaintext.
    peer_identity: String,
}

#[derive(Clone)]
pub struct PeerMetrics {
    requests: Family<PeerLabels, Counter>,
    /// The plaintext series, looked up once: the plaintext path pays one increment.
    plaintext: Counter,
}

impl PeerMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let requests = Family::<PeerLabels, Counter>::default();
        registry.register(
            family::INBOUND_PEER_REQUESTS,
            "Requests from peer proxies at the inbound, by TLS and the peer's identity",
            requests.clone(),
        );
        let plaintext = requests
            .get_or_create(&PeerLabels {
                tls: "none",
                peer_identity: String::new(),
            })
            .clone();
        Self {
            requests,
            plaintext,
        }
    }

    /// A request from `peer` (its identity over mutual TLS; `None` in plaintext).
    pub fn request(&self, peer: Option<&str>) {
        match peer {
            None => {
                self.plaintext.inc();
            }
            Some(id) => {
                self.requests
                    .get_or_create(&PeerLabels {
                        tls: "mutual",
                        peer_identity: id.to_string(),
                    })
                    .inc();
            }
        }
    }
}
