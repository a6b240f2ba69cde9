//! Policies compiled for the hot path: status patterns parsed and methods typed once per
//! (re)load, and shared by `Arc` so a request's lookup allocates nothing.

use std::sync::Arc;

use weft_http::Error as Upstream;

use crate::error::{kind, ProxyError};
use http::{HeaderMap, Method, StatusCode};
use weft_core::policy::{parse_status_pattern, Policies, Policy};

use crate::FastMap;

pub(crate) struct Compiled {
    pub policy: Policy,
    statuses: Vec<(u16, u16)>,
    methods: Vec<Method>,
}

impl Compiled {
    pub(crate) fn new(policy: Policy) -> Self {
        let statuses = policy
            .retry
            .statuses
            .iter()
            .filter_map(|s| parse_status_pattern(s))
            .collect();
        let methods = policy
            .retry
            .methods
            .iter()
            .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .collect();
        Self {
            policy,
            statuses,
            methods,
        }
    }

    /// A response worth another attempt: a retryable gRPC status (whatever the method), or a
    /// retryable HTTP status on a method that may be sent twice.
    pub(crate) fn retryable_response(
        &self,
        method: &Method,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> bool {
        // The peer proxy answered without reaching the app (its discovery lags ours, its
        // instance refused a connection): safe to send elsewhere, whatever the method.
        if let Some(e) = headers.get(weft_core::headers::WEFT_ERROR) {
            if kind::NOT_DELIVERED
                .iter()
                .any(|k| e.as_bytes() == k.as_bytes())
            {
                return true;
            }
        }
        if let Some(code) = headers
            .get(weft_core::headers::GRPC_STATUS)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok())
        {
            return self.policy.retry.grpc_codes.contains(&code);
        }
        let s = status.as_u16();
        self.methods.contains(method)
            && self
                .statuses
                .iter()
                .any(|(lo, hi)| (*lo..=*hi).contains(&s))
    }

    /// A failure worth another attempt: nothing was sent or the upstream refused it
    /// unprocessed (any method), or the connection
    /// broke on a method that may be sent twice.
    pub(crate) fn retryable_error(&self, method: &Method, err: &ProxyError) -> bool {
        match err {
            ProxyError::Upstream(
                Upstream::ConnectRefused { .. }
                | Upstream::ConnectTimeout { .. }
                | Upstream::ConnectFailed { .. }
                | Upstream::Refused { .. },
            ) => true,
            ProxyError::Upstream(Upstream::Reset { .. }) | ProxyError::AttemptTimeout { .. } => {
                self.methods.contains(method)
            }
            _ => false,
        }
    }
}

/// Every service's compiled policy; swapped whole on reload.
pub(crate) struct Table {
    default: Arc<Compiled>,
    services: FastMap<String, Arc<Compiled>>,
    pub source: Policies,
}

impl Table {
    pub(crate) fn new(p: Policies) -> Self {
        Self {
            default: Arc::new(Compiled::new(p.default.clone())),
            services: p
                .services
                .iter()
                .map(|(k, v)| (k.clone(), Arc::new(Compiled::new(v.clone()))))
                .collect(),
            source: p,
        }
    }

    pub(crate) fn get(&self, service: &str) -> Arc<Compiled> {
        Arc::clone(self.services.get(service).unwrap_or(&self.default))
    }
}
