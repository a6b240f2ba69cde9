//! weft's HTTP transport: what carries a request in and out of the proxy, with no knowledge
//! of services, policy or metrics. The proxy above it decides where a request goes; this
//! crate reads it off a client's connection and sends it to an address.
//!
//! Layout:
//! - [`server`]: a listener serving HTTP/1.x (weft's own codec) and h2c on one port, with
//!   header limits and a graceful drain; requests go to a handler the caller gives.
//! - [`client`]: upstream connections: a pooled HTTP/1.1 client whose forwarding task does
//!   the I/O itself, one shared HTTP/2 connection per address, dedicated upgrade connections.
//! - `h1`: the HTTP/1 codec both sides use: heads, body framing, bodies written out.
//! - `h2`: what the HTTP/2 server and client share: bodies read and sent under flow
//!   control, windows, keep-alive PINGs.
//! - [`body`]: a body read off an HTTP/1 connection or an HTTP/2 stream, the shape of a
//!   client's request ([`ClientBody`]) and an upstream's response ([`ResponseBody`]).
//! - `socket`: a client's socket, counted through [`ConnStats`]; halves; bytes put back.
//! - [`headers`]: hop-by-hop stripping, the authority, request shapes refused as smuggling.
//! - [`forms`]: a request put in the form HTTP/1.1 or HTTP/2 sends it in.
//! - [`timers`]: deadline timers kept for reuse, and work bounded by them.
//! - [`error`]: why sending failed, and whether the request may be sent again.
//! - [`dns`]: DNS messages on the wire, for the proxy's egress resolver: a query written,
//!   an answer's addresses read.
//! - `fuzzing`: the codec's parsers and request writer, re-exported for the fuzz harnesses
//!   (`fuzz/`) only.
#![forbid(unsafe_code)]

pub mod body;
pub mod client;
pub mod dns;
pub mod error;
pub mod forms;
pub(crate) mod h1;
pub(crate) mod h2;
pub mod headers;
pub mod server;
pub(crate) mod socket;
pub mod timers;

/// The HTTP/1 codec's parsers, and the request writer whose output they read back, for
/// `weft-fuzz` alone: the codec stays this crate's own, but its parsers read bytes from
/// anyone and are fuzzed from a separate crate.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::h1::decode::{Decoder, Step};
    pub use crate::h1::head::{BodyFraming, Framing};
    pub use crate::h1::request::{encode as encode_request, parse as parse_request};
    pub use crate::h1::request::{Refusal, RequestHead};
    pub use crate::h1::response::{parse as parse_response, ResponseHead};
}

pub use body::EitherBody;
pub use client::{ResponseBody, UpstreamBody};
pub use error::{BoxError, Error, SendError};
pub use h2::body::H2Body;
pub use server::{ClientBody, RecvBody};
pub use socket::{ConnStats, Rewind, Stats};

/// Maps keyed by upstream address, looked up on every request. Their keys come from the
/// caller's configuration, not from clients, so a fast seeded hash is enough.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
