//! The membership process manager of logs written before activation joined the settlement
//! transaction: a confirmed payment activates (or extends) the buyer's membership; a full
//! refund takes back the period that order bought. It now only runs at start-up, to finish
//! what such a log left (see `finish`).
//!
//! It reads the log by position and sends the Subscription aggregate a command per fact.
//! The aggregate is idempotent by order id, so acting on an event twice (after a crash before
//! the checkpoint moved, or from two instances) changes nothing: the effect happens once.

use std::sync::Arc;
use std::time::Duration;

use aggregates::{
    Order, OrderEvent, OrderId, OrderStatus, Subscription, SubscriptionCommand, SubscriptionError,
};
use chrono::Utc;
use cqrs_es::{Aggregate, AggregateError};
use projections::log::{self, LedgerEvent, StoredEvent};
use sqlx::{AnyPool, Row};

use crate::store::{Actor, CommandBus, EventMetadata, Source};

const PROCESS_NAME: &str = "membership";
const BATCH_SIZE: i64 = 200;
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Log(#[from] projections::LogError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("activating a membership failed: {0}")]
    Command(String),
}

/// Finishes what a log written before activation moved into the settlement transaction may
/// have left undone (a payment confirmed, its membership not yet activated), then stops:
/// every later payment activates its membership in the payment's own transaction.
pub async fn finish(pool: AnyPool, subscriptions: Arc<CommandBus<Subscription>>) {
    loop {
        match run_batch(&pool, &subscriptions).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "finishing earlier membership work failed; retrying");
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

/// Acts on the next batch of events; returns how many were read.
pub async fn run_batch(
    pool: &AnyPool,
    subscriptions: &CommandBus<Subscription>,
) -> Result<usize, ProcessError> {
    sqlx::query(
        "INSERT INTO process_checkpoints (process, position) VALUES ($1, 0) \
         ON CONFLICT (process) DO NOTHING",
    )
    .bind(PROCESS_NAME)
    .execute(pool)
    .await?;
    let checkpoint: i64 =
        sqlx::query("SELECT position FROM process_checkpoints WHERE process = $1")
            .bind(PROCESS_NAME)
            .fetch_one(pool)
            .await?
            .try_get("position")?;
    let events = log::read_after(pool, checkpoint, BATCH_SIZE).await?;
    for event in &events {
        act(pool, subscriptions, event).await?;
        sqlx::query(
            "UPDATE process_checkpoints SET position = $1 WHERE process = $2 AND position < $1",
        )
        .bind(event.position)
        .bind(PROCESS_NAME)
        .execute(pool)
        .await?;
    }
    Ok(events.len())
}

async fn act(
    pool: &AnyPool,
    subscriptions: &CommandBus<Subscription>,
    event: &StoredEvent,
) -> Result<(), ProcessError> {
    let LedgerEvent::Order(order_event) = &event.event else {
        return Ok(());
    };
    let (command, order) = match order_event {
        OrderEvent::PaymentConfirmed { paid_at, .. } => {
            let order = order_as_of(pool, event).await?;
            let (Some(user_id), Some(plan_id), Some(tier), Some(period)) = (
                order.user_id().cloned(),
                order.plan_id().cloned(),
                order.tier(),
                order.period(),
            ) else {
                return Ok(());
            };
            let command = SubscriptionCommand::ActivateMembership {
                user_id,
                order_id: order_id(event)?,
                plan_id,
                tier,
                period,
                at: *paid_at,
            };
            (command, order)
        }
        OrderEvent::Refunded { refunded_at, .. } => {
            let order = order_as_of(pool, event).await?;
            if order.status() != Some(OrderStatus::Refunded) {
                return Ok(());
            }
            let command = SubscriptionCommand::RevokeMembership {
                order_id: order_id(event)?,
                at: *refunded_at,
            };
            (command, order)
        }
        _ => return Ok(()),
    };
    let Some(user_id) = order.user_id() else {
        return Ok(());
    };
    let metadata = EventMetadata {
        request_id: format!("process-{PROCESS_NAME}-{}", event.position),
        actor: Actor::System,
        source: Source::Process,
        gateway_event_id: event.metadata.get("gateway_event_id").cloned(),
        recorded_at: Utc::now(),
    };
    match subscriptions
        .execute(user_id.as_ref(), command, &metadata)
        .await
    {
        Ok(committed) => {
            if !committed.is_unchanged() {
                tracing::info!(order = %event.aggregate_id, user = %user_id, "membership updated");
            }
            Ok(())
        }
        // A refunded order that never activated anything has nothing to take back.
        Err(AggregateError::UserError(SubscriptionError::OrderNotActivated { .. })) => Ok(()),
        Err(error) => Err(ProcessError::Command(error.to_string())),
    }
}

fn order_id(event: &StoredEvent) -> Result<OrderId, ProcessError> {
    event
        .aggregate_id
        .parse()
        .map_err(|_| ProcessError::Command(format!("bad order id {}", event.aggregate_id)))
}

/// The order's state right after `event` (folding its stream up to that event).
async fn order_as_of(pool: &AnyPool, event: &StoredEvent) -> Result<Order, ProcessError> {
    let mut order = Order::default();
    for stored in log::read_stream(pool, Order::TYPE, &event.aggregate_id).await? {
        if stored.sequence > event.sequence {
            break;
        }
        if let LedgerEvent::Order(order_event) = stored.event {
            order.apply(&order_event);
        }
    }
    Ok(order)
}
