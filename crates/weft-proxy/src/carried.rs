//! The `weft-ctx-*` headers a call carries from hop to hop, as the proxy enforces them: the
//! hop count, which turns a request looping through the mesh into a `508`, and the staging
//! override, honoured from apps on this node and from peers named in config
//! (`context.override_peers`), dropped and counted from anyone else.
//!
//! A hop is counted where a request is handed to an app: by the inbound that delivers it,
//! or by an outbound sending straight to an endpoint with no proxy on its node. Every loop
//! passes through such a hand-over (an app, or a listener posing as one), and the hop
//! between proxies carries no header the app did not send.
//!
//! `weft-request-id` is made here too, by the first proxy a request passes.

use std::sync::LazyLock;

use http::header::{HeaderMap, HeaderValue};
use weft_core::context::{override_for, parse_hops};
use weft_core::headers::{WEFT_CTX_HOPS, WEFT_CTX_OVERRIDE, WEFT_REQUEST_ID};
use weft_core::NameRules;

use crate::error::ProxyError;
use crate::mesh::Seen;
use crate::shared::Shared;

/// Every count a request can be handed on with (`context.max_hops` is at most 255), made
/// once: a static value is cloned with no allocation and no reference count.
static COUNTS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    (0..=255u32)
        .map(|n| HeaderValue::from_static(Box::leak(n.to_string().into_boxed_str())))
        .collect()
});

/// The hops a request has made so far, as `weft-ctx-hops` says (none without it): an error
/// when one more would pass `max`, or the value is no number.
pub(crate) fn hops(headers: &HeaderMap, seen: Seen, max: u32) -> Result<u32, ProxyError> {
    if !seen.hops() {
        return Ok(0);
    }
    let hops = headers
        .get(WEFT_CTX_HOPS)
        .and_then(|v| parse_hops(v.as_bytes()))
        .ok_or(ProxyError::BadRequest("malformed weft-ctx-hops"))?;
    if hops >= max {
        return Err(ProxyError::LoopDetected { hops });
    }
    Ok(hops)
}

/// Gives a request a `weft-request-id` (over any it had): 128 random bits in hex.
pub(crate) fn make_request_id(headers: &mut HeaderMap) {
    let id = weft_core::trace::hex_value(fastrand::u128(..));
    headers.insert(WEFT_REQUEST_ID, id);
}

/// Hands a request that had made `hops` to an app: one more.
pub(crate) fn count_hop(headers: &mut HeaderMap, hops: u32) {
    set_hops(headers, hops.saturating_add(1));
}

/// Says `hops` in `weft-ctx-hops` (past 255, 255: the limit is lower).
pub(crate) fn set_hops(headers: &mut HeaderMap, hops: u32) {
    let last = COUNTS.len() - 1;
    let n = usize::try_from(hops).map_or(last, |n| n.min(last));
    headers.insert(WEFT_CTX_HOPS, COUNTS[n].clone());
}

/// Before a request leaves the mesh: every `weft-ctx-*` header but the hop count off, and
/// that counted.
pub(crate) fn outside(headers: &mut HeaderMap, hops: u32) {
    let context: Vec<_> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("weft-ctx-") && **n != WEFT_CTX_HOPS)
        .cloned()
        .collect();
    for name in context {
        headers.remove(name);
    }
    count_hop(headers, hops);
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
    let mut values = headers.get_all(WEFT_CTX_OVERRIDE).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    // One header, so what this proxy checked is all a later hop could read.
    if values.next().is_some() {
        return Err(ProxyError::BadOverride(
            "more than one weft-ctx-override header".into(),
        ));
    }
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
