//! What the HTTP/2 server (h2c) and client share: the windows both sides open, keep-alive
//! PINGs, and bodies read and sent under flow control ([`body`]).

pub mod body;

use std::time::Duration;

/// Flow-control windows, fixed and generous (as Envoy's are): an adaptive window estimates
/// bandwidth with a PING per burst of data, which costs a write and a wake-up on both ends
/// for every small response.
pub const STREAM_WINDOW: u32 = 1024 * 1024;
pub const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// A peer that does not answer a PING this long after one is sent is taken for dead.
const PING_EVERY: Duration = Duration::from_secs(20);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// PINGs the peer now and then; returns when one goes unanswered (the peer is gone). Without
/// `pings` (h2 hands them out once per connection) it never returns.
pub async fn keep_alive(pings: Option<h2::PingPong>) {
    let Some(mut pings) = pings else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(PING_EVERY).await;
        let answered = tokio::time::timeout(PING_TIMEOUT, pings.ping(h2::Ping::opaque())).await;
        if !matches!(answered, Ok(Ok(_))) {
            return;
        }
    }
}
