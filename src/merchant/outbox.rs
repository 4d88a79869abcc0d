//! The outbox follower: reads the log by position behind the views and enqueues one delivery
//! per merchant event and endpoint, moving its checkpoint in the same transaction. A crash
//! therefore never drops an event (the checkpoint did not move) nor invents one (deliveries
//! are keyed by event and endpoint), and two processes never enqueue one event twice: the
//! checkpoint moves by compare-and-set, and the loser's transaction is rolled back.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio::sync::Notify;

use super::endpoints::{self, Endpoint};
use super::events;
use super::{deliveries, MerchantError};
use crate::state::AppState;

/// The outbox's row in `process_checkpoints`.
pub const PROCESS_NAME: &str = "merchant_outbox";
/// Log events read per transaction.
const BATCH_MAX: i64 = 200;
/// How long the follower waits for the views to move before looking again anyway.
const IDLE_WAIT: Duration = Duration::from_secs(5);
/// With no endpoint, how often the follower looks for one when nothing wakes it sooner (an
/// endpoint added through this process); meanwhile its checkpoint follows the views every so
/// often without reading the log (an endpoint added later starts after the head, and the move
/// never passes an endpoint's start). Commits do not wake it: without endpoints it would only
/// ask again and move its checkpoint, two transactions per commit for nothing. A server
/// without endpoints so costs one question every few seconds, busy or idle.
const ENDPOINTS_RECHECK: Duration = Duration::from_secs(5);
/// Pause after a failure before trying again.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Starts the checkpoint at the log's head the first time (history before the outbox existed
/// is not delivered; the feed still serves it).
pub async fn prepare(state: &AppState) -> Result<(), MerchantError> {
    let head = projections::log::head(&state.store.read).await?;
    sqlx::query(
        "INSERT INTO process_checkpoints (process, position) VALUES ($1, $2) \
         ON CONFLICT (process) DO NOTHING",
    )
    .bind(PROCESS_NAME)
    .bind(head)
    .execute(&state.store.read)
    .await?;
    Ok(())
}

/// Follows the log for as long as the service runs; wakes `senders` when it enqueued, and
/// when the endpoints it reads differ from the last ones it saw (another process added or
/// removed one), so the senders' supervisor need not poll the endpoints itself.
pub async fn follow(state: AppState, give_up_after: Duration, senders: Arc<Notify>) {
    let mut skipped_to = 0;
    let mut seen = SeenEndpoints::default();
    loop {
        match run_batch(&state, give_up_after, &mut seen, &senders).await {
            Ok(Batch::Enqueued) => senders.notify_waiters(),
            Ok(Batch::Moved) => {}
            Ok(Batch::Idle(at)) => {
                state.views.wait_past(at, IDLE_WAIT).await;
            }
            Ok(Batch::NoEndpoints) => {
                let views_at = state.views.position();
                if views_at > skipped_to {
                    match skip_to(&state, views_at).await {
                        Ok(()) => skipped_to = views_at,
                        Err(error) => tracing::error!(%error, "moving the merchant outbox failed"),
                    }
                }
                let endpoint_added = state.outbound.notified();
                tokio::select! {
                    () = endpoint_added => {}
                    () = tokio::time::sleep(ENDPOINTS_RECHECK) => {}
                }
            }
            Err(error) => {
                tracing::error!(%error, "the merchant outbox failed; retrying");
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

/// Moves the checkpoint forward to `position` (never back) while no endpoint would take an
/// event up to there: one added meanwhile stops the move, and the next batch reads for it.
async fn skip_to(state: &AppState, position: i64) -> Result<(), MerchantError> {
    sqlx::query(
        "UPDATE process_checkpoints SET position = $1 WHERE process = $2 AND position < $1 \
         AND NOT EXISTS (SELECT 1 FROM merchant_webhook_endpoints \
             WHERE deleted_at IS NULL AND from_position < $1)",
    )
    .bind(position)
    .bind(PROCESS_NAME)
    .execute(&state.store.read)
    .await?;
    Ok(())
}

enum Batch {
    /// Deliveries were enqueued.
    Enqueued,
    /// The checkpoint moved (or another process moved it) without new deliveries.
    Moved,
    /// Nothing to read up to the views' position, which is this.
    Idle(i64),
    /// No endpoint takes events: nothing is read.
    NoEndpoints,
}

/// The endpoints the outbox read last, to tell when they change.
#[derive(Default)]
struct SeenEndpoints(Vec<Endpoint>);

impl SeenEndpoints {
    /// Keeps `current`; true when it differs from what was seen before.
    fn changed_to(&mut self, current: &[Endpoint]) -> bool {
        if self.0 == current {
            return false;
        }
        self.0 = current.to_vec();
        true
    }
}

async fn run_batch(
    state: &AppState,
    give_up_after: Duration,
    seen: &mut SeenEndpoints,
    senders: &Notify,
) -> Result<Batch, MerchantError> {
    // Read outside the transaction to skip the data of events no endpoint takes, and the
    // whole log while there is no endpoint. An endpoint added meanwhile starts after the
    // log's head, past every event read here, so it misses nothing.
    let interested = endpoints::active(&state.store.read).await?;
    if seen.changed_to(&interested) {
        // Perhaps added or removed through another process: the senders' supervisor reads
        // the endpoints again (it does not poll them often itself).
        senders.notify_waiters();
    }
    if interested.is_empty() {
        return Ok(Batch::NoEndpoints);
    }
    let checkpoint: i64 =
        sqlx::query("SELECT position FROM process_checkpoints WHERE process = $1")
            .bind(PROCESS_NAME)
            .fetch_one(&state.store.read)
            .await?
            .try_get("position")?;
    // Only what the views include: each event's data is read from them.
    let views_at = state.views.position();
    if views_at <= checkpoint {
        return Ok(Batch::Idle(views_at.max(checkpoint)));
    }
    let log_events =
        projections::log::read_range(&state.store.read, checkpoint, Some(views_at), BATCH_MAX)
            .await?;
    let Some(last) = log_events.last().map(|event| event.position) else {
        return Ok(Batch::Idle(views_at));
    };
    let mut merchant_events = Vec::new();
    for event in &log_events {
        let wanted = events::classify(event).is_some_and(|(kind, _)| {
            interested.iter().any(|endpoint| {
                endpoint.wants(kind.as_str()) && event.position > endpoint.from_position
            })
        });
        if !wanted {
            continue;
        }
        if let Some(found) = events::from_log(state, event)
            .await
            .map_err(|error| MerchantError::Data(error.to_string()))?
        {
            merchant_events.push(found);
        }
    }
    let mut transaction = state.store.begin_write().await?;
    // The checkpoint first: a concurrent outbox waits here, then finds it moved and stops.
    let moved = sqlx::query(
        "UPDATE process_checkpoints SET position = $1 WHERE process = $2 AND position = $3",
    )
    .bind(last)
    .bind(PROCESS_NAME)
    .bind(checkpoint)
    .execute(&mut *transaction)
    .await?
    .rows_affected();
    if moved != 1 {
        transaction.rollback().await?;
        return Ok(Batch::Moved);
    }
    let targets = endpoints::active(&mut *transaction).await?;
    if targets != interested {
        // An endpoint came or went since the events were chosen: choose again.
        transaction.rollback().await?;
        return Ok(Batch::Moved);
    }
    let mut enqueued = 0;
    for (event, subject) in &merchant_events {
        enqueued +=
            deliveries::enqueue(&mut transaction, &targets, event, subject, give_up_after).await?;
    }
    transaction.commit().await?;
    if enqueued > 0 {
        tracing::debug!(enqueued, up_to = last, "merchant events enqueued");
        Ok(Batch::Enqueued)
    } else {
        Ok(Batch::Moved)
    }
}
