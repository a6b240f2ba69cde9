//! weft's own HTTP/1.x codec, shared by the listener (requests in, responses out) and the
//! upstream client (requests out, responses in). It exists for what a proxy in front of
//! many clients needs and a general-purpose library does not give: heads parsed in place
//! (header values stay slices of one buffer), one write per small message, and refusals
//! that carry `weft-error`.
//!
//! - [`request`]: request heads parsed (with the shapes refused as smuggling) and written.
//! - [`response`]: response heads written and parsed.
//! - [`head`]: what both share: headers read in place, framing rules (RFC 9112 §6.3).
//! - [`decode`]: body framing (Content-Length, chunked with trailers, until close).
//! - [`write`](mod@write): a message body written out after its head, framed, in as few
//!   writes as possible.

pub mod decode;
pub mod head;
pub mod request;
pub mod response;
pub mod write;
