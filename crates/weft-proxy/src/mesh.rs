//! The mesh's own request headers at a proxy's edges: removed from whatever arrives (only
//! the mesh may set them). `weft-dst-service`, the route a peer proxy chose, is read by
//! [`weft_core::headers::dst_service`].

use http::header::{HeaderMap, HeaderName};
use weft_core::headers::{
    WEFT_CTX_DEADLINE, WEFT_CTX_HOPS, WEFT_CTX_OVERRIDE, WEFT_CTX_TIMEOUT, WEFT_DST_SERVICE,
    WEFT_ORIG_PROTO, WEFT_REQUEST_ID,
};

/// Which of the mesh's headers a request carries, from one pass over its names: apps send
/// none, a peer two or three, and a lookup or removal costs a hashed probe each.
#[derive(Clone, Copy, Default)]
pub(crate) struct Seen(u8);

impl Seen {
    pub(crate) fn hops(self) -> bool {
        self.0 & (1 << HOPS) != 0
    }

    pub(crate) fn overrides(self) -> bool {
        self.0 & (1 << OVERRIDE) != 0
    }

    pub(crate) fn request_id(self) -> bool {
        self.0 & (1 << REQUEST_ID) != 0
    }

    /// Forgets the override (dropped, so nothing downstream reads it).
    pub(crate) fn without_override(self) -> Self {
        Self(self.0 & !(1 << OVERRIDE))
    }
}

pub(crate) fn scan(headers: &HeaderMap) -> Seen {
    let mut seen = 0u8;
    for name in headers.keys() {
        let name = name.as_str();
        // Compared as strings: a length differs first, where `HeaderName`s call memcmp.
        if name.starts_with("weft-") {
            if let Some(i) = NAMES.iter().position(|m| m.as_str() == name) {
                seen |= 1 << i;
            }
        }
    }
    Seen(seen)
}

/// Removes the mesh's own request headers `seen` found: routing headers a client must not
/// be able to set on the mesh's behalf, and the deadline's, which each hop has read and
/// writes afresh. The hop count and the override are the caller's to keep or drop.
pub(crate) fn strip(headers: &mut HeaderMap, seen: Seen) {
    for (i, name) in NAMES.iter().enumerate().take(STRIPPED) {
        if seen.0 & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// The first `STRIPPED` are removed at every edge; the rest travel with the call.
const STRIPPED: usize = 4;
const HOPS: usize = 4;
const OVERRIDE: usize = 5;
const REQUEST_ID: usize = 6;
static NAMES: [HeaderName; 7] = [
    WEFT_DST_SERVICE,
    WEFT_ORIG_PROTO,
    WEFT_CTX_DEADLINE,
    WEFT_CTX_TIMEOUT,
    WEFT_CTX_HOPS,
    WEFT_CTX_OVERRIDE,
    WEFT_REQUEST_ID,
];
