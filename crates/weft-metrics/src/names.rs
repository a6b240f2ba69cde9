//! The names in a proxy's exposition, for the code that registers the families and the code
//! that reads the text back (the dashboard): each family as registered and as its samples
//! are named, and the label names. A test renders real metrics and finds every one, so the
//! two sides cannot drift apart.

/// Prefix of every family a proxy exports.
pub const PREFIX: &str = "weft";

/// Families as registered (the prefix is added by the registry).
pub(crate) mod family {
    pub const REQUESTS: &str = "requests";
    pub const RESPONSES: &str = "responses";
    pub const LATENCY: &str = "response_latency_seconds";
    pub const ATTEMPTS: &str = "attempts";
    pub const RETRIES: &str = "retries";
    pub const BUDGET_EXHAUSTED: &str = "retry_budget_exhausted";
    pub const ENDPOINT_RETRIES: &str = "endpoint_retries";
    pub const ENDPOINT_BUDGET_EXHAUSTED: &str = "endpoint_retry_budget_exhausted";
    pub const SERVICE_ENDPOINTS: &str = "service_endpoints";
    pub const PROXY_INFO: &str = "proxy_info";
    pub const TUNNELS: &str = "tunnels";
    pub const TUNNELS_OPEN: &str = "tunnels_open";
    pub const TUNNEL_READ_BYTES: &str = "tunnel_read_bytes";
    pub const TUNNEL_WRITE_BYTES: &str = "tunnel_write_bytes";
    pub const TUNNEL_DURATION: &str = "tunnel_duration_seconds";
    pub const INBOUND_PEER_REQUESTS: &str = "inbound_peer_requests";
    pub const IDENTITY_INFO: &str = "identity_info";
    pub const ROUTE_REQUESTS: &str = "route_requests";
    pub const ROUTE_RESPONSES: &str = "route_responses";
    pub const ROUTE_LATENCY: &str = "route_response_latency_seconds";
    pub const ROUTE_BACKEND_ATTEMPTS: &str = "route_backend_attempts";
    pub const ROUTE_BACKEND_LATENCY: &str = "route_backend_latency_seconds";
    pub const CONTEXT_HEADERS_DROPPED: &str = "context_headers_dropped";
    pub const TRACE_SPANS: &str = "trace_spans";
}

/// Samples as the text format names them.
pub mod sample {
    pub const REQUESTS: &str = "weft_requests_total";
    pub const RESPONSES: &str = "weft_responses_total";
    pub const LATENCY_BUCKET: &str = "weft_response_latency_seconds_bucket";
    pub const LATENCY_SUM: &str = "weft_response_latency_seconds_sum";
    pub const ATTEMPTS: &str = "weft_attempts_total";
    pub const RETRIES: &str = "weft_retries_total";
    pub const BUDGET_EXHAUSTED: &str = "weft_retry_budget_exhausted_total";
    pub const ENDPOINT_RETRIES: &str = "weft_endpoint_retries_total";
    pub const ENDPOINT_BUDGET_EXHAUSTED: &str = "weft_endpoint_retry_budget_exhausted_total";
    pub const SERVICE_ENDPOINTS: &str = "weft_service_endpoints";
    pub const PROXY_INFO: &str = "weft_proxy_info";
    pub const INBOUND_PEER_REQUESTS: &str = "weft_inbound_peer_requests_total";
    pub const IDENTITY_INFO: &str = "weft_identity_info";
    pub const ROUTE_REQUESTS: &str = "weft_route_requests_total";
    pub const ROUTE_RESPONSES: &str = "weft_route_responses_total";
    pub const ROUTE_LATENCY_BUCKET: &str = "weft_route_response_latency_seconds_bucket";
    pub const ROUTE_BACKEND_ATTEMPTS: &str = "weft_route_backend_attempts_total";
    pub const ROUTE_BACKEND_LATENCY_BUCKET: &str = "weft_route_backend_latency_seconds_bucket";
}

/// The `service` label value of requests that name no known service, so a client sending
/// arbitrary authorities cannot grow the series count.
pub const UNKNOWN_SERVICE: &str = "_unknown";

/// Label names.
pub mod label {
    pub const DIRECTION: &str = "direction";
    pub const SERVICE: &str = "service";
    pub const ENDPOINT: &str = "endpoint";
    pub const STATUS_CODE: &str = "status_code";
    pub const CLASSIFICATION: &str = "classification";
    pub const ERROR: &str = "error";
    pub const NODE: &str = "node";
    /// `weft_proxy_info`: the inbound listener peers (and the dashboard's tap) reach.
    pub const INBOUND: &str = "inbound";
    pub const VERSION: &str = "version";
    pub const TLS: &str = "tls";
    pub const IDENTITY: &str = "identity";
    /// What a tunnel carried: `http`, `tls` or `nothing`.
    pub const CARRIED: &str = "carried";
    pub const ROUTE: &str = "route";
    pub const BACKEND: &str = "backend";
    /// A histogram bucket's upper bound.
    pub const LE: &str = "le";
    /// A latency exemplar's trace (the field of `TraceExemplar`).
    pub const TRACE_ID: &str = "trace_id";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Classification, Direction, Metrics};

    #[test]
    fn every_name_is_in_the_exposition() {
        let m = Metrics::new("n1");
        let route = m.http.route(Direction::Outbound, "world", "10.0.0.1:80");
        route.request();
        route.latency(std::time::Duration::from_millis(3));
        route.response(503, Classification::Failure, "no endpoints");
        route.attempt(Classification::Failure);
        route.retried();
        route.retry_refused();
        let counters = m.http.service(Direction::Outbound, "world");
        counters.retries.inc();
        counters.budget_exhausted.inc();
        counters.endpoints.set(3);
        let text = m.render_text();
        let samples = crate::parse::parse(&text);
        for name in [
            sample::REQUESTS,
            sample::RESPONSES,
            sample::LATENCY_BUCKET,
            sample::LATENCY_SUM,
            sample::ATTEMPTS,
            sample::RETRIES,
            sample::BUDGET_EXHAUSTED,
            sample::ENDPOINT_RETRIES,
            sample::ENDPOINT_BUDGET_EXHAUSTED,
            sample::SERVICE_ENDPOINTS,
            sample::PROXY_INFO,
        ] {
            assert!(
                samples.iter().any(|s| s.name == name),
                "{name} missing:\n{text}"
            );
        }
        let responses = samples
            .iter()
            .find(|s| s.name == sample::RESPONSES)
            .unwrap();
        for label in [
            label::DIRECTION,
            label::SERVICE,
            label::ENDPOINT,
            label::STATUS_CODE,
            label::CLASSIFICATION,
            label::ERROR,
        ] {
            assert!(
                responses.label(label).is_some(),
                "{label} missing: {responses:?}"
            );
        }
        assert_eq!(
            responses.label(label::DIRECTION),
            Some(Direction::Outbound.as_str())
        );
        assert_eq!(
            responses.label(label::CLASSIFICATION),
            Some(Classification::Failure.as_str())
        );
        let info = samples
            .iter()
            .find(|s| s.name == sample::PROXY_INFO)
            .unwrap();
        assert_eq!(info.label(label::NODE), Some("n1"));
        assert!(info.label(label::VERSION).is_some());
        let bucket = samples
            .iter()
            .find(|s| s.name == sample::LATENCY_BUCKET)
            .unwrap();
        assert!(bucket.label(label::LE).is_some());
        for family in [
            family::REQUESTS,
            family::ATTEMPTS,
            family::RETRIES,
            family::BUDGET_EXHAUSTED,
            family::ENDPOINT_RETRIES,
            family::ENDPOINT_BUDGET_EXHAUSTED,
            family::LATENCY,
        ] {
            let help = format!("# HELP {PREFIX}_{family}");
            assert!(text.contains(&help), "{help} missing");
        }
    }
}
