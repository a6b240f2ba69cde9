//! Connection-level metrics per listener: what is open, what was accepted, bytes each way;
//! and the mutual TLS between proxies: connections accepted in it, peers refused and why.

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

/// Why a peer's connection was refused: a certificate check's reason, or the listener's
/// (`plaintext`, `no_certificate`, `handshake`). Values come from a fixed list.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub reason: &'static str,
}

/// Why a client's HTTP/2 connection was closed for abuse (`rapid_reset`, …): fixed values.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AbuseLabels {
    pub direction: Direction,
    pub reason: &'static str,
}

#[derive(Clone, Default)]
pub struct TcpMetrics {
    open: Family<ListenerLabels, Gauge>,
    accepted: Family<ListenerLabels, Counter>,
    tls_accepted: Family<ListenerLabels, Counter>,
    read_bytes: Family<ListenerLabels, Counter>,
    write_bytes: Family<ListenerLabels, Counter>,
    tls_refused: Family<RefusedLabels, Counter>,
    h2_abuse: Family<AbuseLabels, Counter>,
    overloaded: Family<ListenerLabels, Counter>,
}

/// Handles for one listener, resolved once at bind time.
#[derive(Clone)]
pub struct ListenerMetrics {
    pub open: Gauge,
    pub accepted: Counter,
    pub tls_accepted: Counter,
    pub read_bytes: Counter,
    pub write_bytes: Counter,
    /// Connections turned away: the listener had its most open.
    pub overloaded: Counter,
    pub direction: Direction,
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
            "tcp_tls_accepted_connections",
            "Client connections accepted in mutual TLS (peer proxies), per listener",
            m.tls_accepted.clone(),
        );
        registry.register(
            "tls_refused_connections",
            "Peers refused in mutual TLS (either side of the hop), by reason",
            m.tls_refused.clone(),
        );
        registry.register(
            "tcp_overloaded_connections",
            "Client connections turned away (503 overloaded): the listener had http.max_connections open",
            m.overloaded.clone(),
        );
        registry.register(
            "http2_abuse_closed_connections",
            "Client HTTP/2 connections closed for abuse (rapid reset and the like), per listener and reason",
            m.h2_abuse.clone(),
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
            tls_accepted: self.tls_accepted.get_or_create(&labels).clone(),
            read_bytes: self.read_bytes.get_or_create(&labels).clone(),
            write_bytes: self.write_bytes.get_or_create(&labels).clone(),
            overloaded: self.overloaded.get_or_create(&labels).clone(),
            direction,
        }
    }

    /// Counts a client's HTTP/2 connection closed for `reason`.
    pub fn h2_abuse(&self, direction: Direction, reason: &'static str) {
        self.h2_abuse
            .get_or_create(&AbuseLabels { direction, reason })
            .inc();
    }

    /// Counts a peer refused for `reason`.
    pub fn tls_refused(&self, reason: &'static str) {
        self.tls_refused
            .get_or_create(&RefusedLabels { reason })
            .inc();
    }
}
