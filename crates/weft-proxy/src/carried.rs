//! The `weft-ctx-*` headers a call carries from hop to hop, as the proxy enforces them: the
//! hop count, which turns a request looping through the mesh into a `508`, and the staging
//! override, honoured from apps on this node and from peers named in config
//! (`context.override_peers`), dropped and counted from anyone else.

use http::header::{HeaderMap, HeaderValue};
use weft_core::context::{override_for, parse_hops};
use weft_core::headers::{WEFT_CTX_HOPS, WEFT_CTX_OVERRIDE};
use weft_core::NameRules;

use crate::error::ProxyError;
use crate::mesh::Seen;
use crate::shared::Shared;

/// The hops a request has made so far, as `weft-ctx-hops` says (none without it).
pub(crate) fn hops(headers: &HeaderMap, seen: Seen) -> Result<u32, ProxyError> {
    if !seen.hops() {
        return Ok(0);
    }
    headers
        .get(WEFT_CTX_HOPS)
        .and_then(|v| parse_hops(v.as_bytes()))
        .ok_or(ProxyError::BadRequest("malformed weft-ctx-hops"))
}

/// Counts this proxy as one more hop of a request that has made `hops`: an error when that
/// would pass `max`, the header set for the next hop otherwise.
pub(crate) fn count_hop(headers: &mut HeaderMap, hops: u32, max: u32) -> Result<(), ProxyError> {
    if hops >= max {
        return Err(ProxyError::LoopDetected { hops });
    }
    let mut digits = itoa::Buffer::new();
    let value = HeaderValue::from_str(digits.format(hops + 1)).expect("digits are a valid value");
    headers.insert(WEFT_CTX_HOPS, value);
    Ok(())
}

/// The service an app's `weft-ctx-override` sends `service`'s request to instead, if one
/// of its rewrites is for `service`; a malformed override is refused whole.
pub(crate) fn override_target(
    names: &NameRules,
    headers: &HeaderMap,
    seen: Seen,
    service: &str,
) -> Result<Option<String>, ProxyError> {
    if !seen.overrides() {
        return Ok(None);
    }
    let Some(value) = headers.get(WEFT_CTX_OVERRIDE) else {
        return Ok(None);
    };
    override_for(value.as_bytes(), names, service)
        .map_err(|e| ProxyError::BadOverride(e.to_string()))
}

/// At the inbound: a peer's override reaches the app only when the peer's mesh identity is
/// named in config; otherwise it is dropped, counted and logged.
pub(crate) fn screen_peer_override(
    shared: &Shared,
    headers: &mut HeaderMap,
    seen: Seen,
    peer: Option<&str>,
) -> Seen {
    if !seen.overrides() || peer.is_some_and(|p| shared.config.context.trusts(p)) {
        return seen;
    }
    headers.remove(WEFT_CTX_OVERRIDE);
    shared
        .context
        .dropped("inbound", "weft-ctx-override", "untrusted peer");
    tracing::info!(
        peer = peer.unwrap_or("(plaintext)"),
        "dropped a weft-ctx-override from a peer not in context.override_peers"
    );
    seen.without_override()
}
