//! The client's side of an upgraded (e.g. WebSocket) connection: the listener attaches a
//! handle to a request that asks to upgrade, and hands over the connection once the `101`
//! answer has been written.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::socket::Rewind;

/// The client's side of an upgraded (e.g. WebSocket) connection, delivered once the `101`
/// response has been written. Travels in the request's extensions.
#[derive(Clone)]
pub struct OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<Rewind>>>>);

impl OnUpgrade {
    pub(super) fn new(rx: oneshot::Receiver<Rewind>) -> Self {
        Self(Arc::new(Mutex::new(Some(rx))))
    }

    /// The upgraded connection, or an error when the handler's answer was not `101`.
    pub async fn get(self) -> Result<Rewind, oneshot::error::RecvError> {
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
