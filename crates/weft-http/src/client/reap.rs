//! Closes a pool's idle connections now and then, for as long as the pool lives.

use std::sync::Arc;
use std::time::Duration;

/// Calls `reap` on the pool every half idle timeout (within bounds), until the pool is gone.
pub(crate) fn spawn_reaper<P: Send + Sync + 'static>(
    pool: &Arc<P>,
    idle_timeout: Duration,
    reap: fn(&P),
) {
    let weak = Arc::downgrade(pool);
    let every = (idle_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(10));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(pool) = weak.upgrade() else { return };
            reap(&pool);
        }
    });
}
