//! Connection-level metrics per listener: what is open, what was accepted, bytes each way.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::http::Direction;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub direction: Direction,
}

#[derive(Clone, Default)]
pub struct TcpMetrics {
    open: Family<ListenerLabels, Gauge>,
    accepted: Family<ListenerLabels, Counter>,
    read_bytes: Family<ListenerLabels, Counter>,
    write_bytes: Family<ListenerLabels, Counter>,
}

/// Handles for one listener, resolved once at bind time.
#[derive(Clone)]
pub struct ListenerMetrics {
    pub open: Gauge,
    pub accepted: Counter,
    pub read_bytes: Counter,
    pub write_bytes: Counter,
}

impl TcpMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "tcp_open_connections",
            "Client connections currently open, per listener",
            m.open.clone(),
        );
        registry.register(
            "tcp_accepted_connections",
            "Client connections accepted, per listener",
            m.accepted.clone(),
        );
        registry.register(
            "tcp_read_bytes",
            "Bytes read from client connections, per listener",
            m.read_bytes.clone(),
        );
        registry.register(
            "tcp_write_bytes",
            "Bytes written to client connections, per listener",
            m.write_bytes.clone(),
        );
        m
    }

    pub fn listener(&self, direction: Direction) -> ListenerMetrics {
        let labels = ListenerLabels { direction };
        ListenerMetrics {
            open: self.open.get_or_create(&labels).clone(),
            accepted: self.accepted.get_or_create(&labels).clone(),
            read_bytes: self.read_bytes.get_or_create(&labels).clone(),
            write_bytes: self.write_bytes.get_or_create(&labels).clone(),
        }
    }
}
