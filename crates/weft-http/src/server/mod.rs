//! The listener's side: a client connection served as HTTP/1.x (weft's own codec) or, when
//! it opens with the HTTP/2 preface, as h2c, on the same port. Each request goes to the
//! caller's handler with a [`ClientBody`] that streams the client's
//! body; the handler's response is written back under the connection's rules.
//!
//! - `listener`: accepts, hands each connection its task, drains on shutdown.
//! - `h1`: one HTTP/1.x connection's loop, and the limits that protect it.
//! - `recv`: an HTTP/1 request body, read off the socket by whoever forwards it.
//! - `h2`: one h2c connection: streams accepted, answered under flow control.
//! - `upgrade`: the client's side of a WebSocket (or other) upgrade.
//! - `spare`: read buffers idle connections hand back for the next request.
//! - `tls`: mutual TLS for peer proxies, told from plaintext by the first byte.

pub(crate) mod h1;
pub(crate) mod h2;
pub(crate) mod listener;
pub(crate) mod recv;
pub(crate) mod spare;
pub(crate) mod tls;
pub(crate) mod upgrade;

pub use h1::Limits;
pub use listener::{serve, serve_connection};
pub use recv::{ClientBody, RecvBody};
pub use tls::{Identify, PeerIdentity, ServerTls};
pub use upgrade::OnUpgrade;
