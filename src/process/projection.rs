//! Runs the projector in the background and tells waiting readers how far the views are.
//!
//! Commands in this process wake the projector at once; events appended by other processes
//! are picked up by a short poll, so several instances on one database stay current.

use std::sync::Arc;
use std::time::Duration;

use projections::{BatchOutcome, Projector, Tables};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::order_cache::OrderCache;
use crate::store::Store;

/// How often an idle projector looks for events appended by other processes.
pub const IDLE_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Pause after a database error before trying again.
pub const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// A handle on the running projector.
#[derive(Clone, Debug)]
pub struct Views {
    wake: Arc<Notify>,
    position: watch::Receiver<i64>,
    cache: Arc<OrderCache>,
}

impl Views {
    /// Orders as the views show them at [`Self::position`], in memory.
    pub fn cache(&self) -> &OrderCache {
        &self.cache
    }

    /// Asks the projector to look at the log now (after a local append).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The position up to which the views are exact.
    pub fn position(&self) -> i64 {
        *self.position.borrow()
    }

    /// Waits until the views include `position`, at most `timeout`. True when they do.
    pub async fn wait_for(&self, position: i64, timeout: Duration) -> bool {
        let mut receiver = self.position.clone();
        let reached = tokio::time::timeout(timeout, receiver.wait_for(|seen| *seen >= position))
            .await
            .is_ok_and(|result| result.is_ok());
        reached
    }

    /// Waits until the views move past `position` (or `timeout`); returns the new position.
    pub async fn wait_past(&self, position: i64, timeout: Duration) -> i64 {
        let mut receiver = self.position.clone();
        let _ = tokio::time::timeout(timeout, receiver.wait_for(|seen| *seen > position)).await;
        let current = *receiver.borrow();
        current
    }
}

/// Prepares the view tables, catches up with the log, and keeps following it.
pub async fn start(store: &Store) -> Result<(Views, JoinHandle<()>), projections::ProjectionError> {
    let projector = Projector::new(store.read.clone(), Tables::live());
    projector.prepare().await?;
    let start = projector.checkpoint().await?;
    let (sender, receiver) = watch::channel(start);
    let wake = Arc::new(Notify::new());
    let cache = Arc::new(OrderCache::new(start));
    let views = Views {
        wake: wake.clone(),
        position: receiver,
        cache: cache.clone(),
    };
    let pool = store.read.clone();
    let task = tokio::spawn(follow(projector, sender, wake, cache, pool));
    Ok((views, task))
}

async fn follow(
    projector: Projector,
    position: watch::Sender<i64>,
    wake: Arc<Notify>,
    cache: Arc<OrderCache>,
    pool: sqlx::AnyPool,
) {
    // Readers may only learn of a position once the cache has dropped what it changed.
    let publish = |checkpoint: i64| {
        let cache = cache.clone();
        let pool = pool.clone();
        let position = position.clone();
        async move {
            if *position.borrow() == checkpoint {
                return;
            }
            if let Err(error) = cache.advance(&pool, checkpoint).await {
                tracing::error!(%error, "order cache could not follow the log");
                return;
            }
            position.send_replace(checkpoint);
        }
    };
    loop {
        match projector.run_batch(None, None).await {
            Ok(BatchOutcome::Applied { checkpoint, .. }) => publish(checkpoint).await,
            Ok(BatchOutcome::LostRace) => {}
            Ok(BatchOutcome::CaughtUp { checkpoint }) => {
                publish(checkpoint).await;
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(IDLE_POLL_INTERVAL) => {}
                }
            }
            Err(error) => {
                tracing::error!(%error, "projector batch failed; retrying");
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}
