//! weft's own HTTP/1.x server side: the connection a client (an app, or anything outside the
//! mesh) opens to a listener. It exists for what a proxy in front of many clients needs and a
//! general-purpose server does not give: idle connections that hold no buffers, a request
//! head parsed in place, bodies read by whoever forwards them, one write per small response,
//! and refusals that carry `weft-error`. HTTP/2 (h2c) on the same port goes to [`crate::h2c`].
//!
//! - [`head`]: request heads in, response heads out, framing rules (RFC 9112).
//! - [`decode`]: body framing (Content-Length, chunked, until close), both directions.
//! - [`body`]: the request body, read off the socket.
//! - [`conn`]: the connection's loop.
//! - [`write`](mod@write): message bodies written out, framed, in as few writes as possible.
//! - [`io`]: the counted socket, and one with already-read bytes put back.
//! - [`spare`]: read buffers idle connections hand back for the next request.

pub mod body;
pub mod conn;
pub mod decode;
pub mod head;
pub mod io;
pub mod spare;
pub mod write;

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The client's side of an upgraded (e.g. WebSocket) connection, delivered once the `101`
/// response has been written. Travels in the request's extensions.
#[derive(Clone)]
pub struct OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<io::Rewind>>>>);

impl OnUpgrade {
    fn new(rx: oneshot::Receiver<io::Rewind>) -> Self {
        Self(Arc::new(Mutex::new(Some(rx))))
    }

    /// The upgraded connection, or an error when the handler's answer was not `101`.
    pub async fn get(self) -> Result<io::Rewind, oneshot::error::RecvError> {
        let rx = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        match rx {
            Some(rx) => rx.await,
            None => {
                let (_, rx) = oneshot::channel();
                rx.await
            }
        }
    }
}
