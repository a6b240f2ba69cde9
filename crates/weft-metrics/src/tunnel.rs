//! `CONNECT` tunnels per service: how many opened and what they carried, and for the ones
//! relayed as opaque bytes (TLS the app does itself) the connections open, bytes each way
//! and how long each lasted. Requests inside an HTTP tunnel are counted as requests.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::http::Direction;
use crate::names::family;

/// Upper bounds, in seconds, of how long tunnels last: a TLS session is seconds to hours.
const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
];

/// What a tunnel carried, told from the first bytes its client sent.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Carried {
    /// HTTP/1.x or HTTP/2: served request by request.
    Http,
    /// A TLS handshake: relayed as opaque bytes.
    Tls,
    /// Nothing before the client left or the header-read timeout passed.
    Nothing,
}

impl Carried {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Tls => "tls",
            Self::Nothing => "nothing",
        }
    }
}

impl EncodeLabelValue for Carried {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TunnelLabels {
    direction: Direction,
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpenedLabels {
    direction: Direction,
    service: String,
    carried: Carried,
}

#[derive(Clone)]
pub struct TunnelMetrics {
    opened: Family<OpenedLabels, Counter>,
    open: Family<TunnelLabels, Gauge>,
    read_bytes: Family<TunnelLabels, Counter>,
    write_bytes: Family<TunnelLabels, Counter>,
    duration: Family<TunnelLabels, Histogram, fn() -> Histogram>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS.iter().copied())
}

impl TunnelMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            opened: Family::default(),
            open: Family::default(),
            read_bytes: Family::default(),
            write_bytes: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
        };
        registry.register(
            family::TUNNELS,
            "CONNECT tunnels opened to a service, by what they carried",
            m.opened.clone(),
        );
        registry.register(
            family::TUNNELS_OPEN,
            "Tunnels relayed as opaque bytes and open now",
            m.open.clone(),
        );
        registry.register(
            family::TUNNEL_READ_BYTES,
            "Bytes a relayed tunnel's client sent",
            m.read_bytes.clone(),
        );
        registry.register(
            family::TUNNEL_WRITE_BYTES,
            "Bytes a relayed tunnel sent its client",
            m.write_bytes.clone(),
        );
        registry.register(
            family::TUNNEL_DURATION,
            "How long relayed tunnels lasted",
            m.duration.clone(),
        );
        m
    }

    /// A tunnel to `service` opened and carried `carried`.
    pub fn opened(&self, direction: Direction, service: &str, carried: Carried) {
        let labels = OpenedLabels {
            direction,
            service: service.to_string(),
            carried,
        };
        self.opened.get_or_create(&labels).inc();
    }

    /// A relay to `service` starting: counted open until the returned guard ends it.
    pub fn relay(&self, direction: Direction, service: &str) -> Relay {
        let labels = TunnelLabels {
            direction,
            service: service.to_string(),
        };
        let open = self.open.get_or_create(&labels).clone();
        open.inc();
        Relay {
            open,
            read_bytes: self.read_bytes.get_or_create(&labels).clone(),
            write_bytes: self.write_bytes.get_or_create(&labels).clone(),
            duration: self.duration.get_or_create(&labels).clone(),
            started: std::time::Instant::now(),
        }
    }
}

/// One relayed tunnel, counted as open while it lives.
pub struct Relay {
    open: Gauge,
    read_bytes: Counter,
    write_bytes: Counter,
    duration: Histogram,
    started: std::time::Instant,
}

impl Relay {
    /// The relay ended having moved `read` bytes from its client and `written` to it.
    pub fn ended(self, read: u64, written: u64) {
        self.read_bytes.inc_by(read);
        self.write_bytes.inc_by(written);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.open.dec();
        self.duration.observe(self.started.elapsed().as_secs_f64());
    }
}
