//! Finishing the membership work a log written by an earlier version may have left.
//!
//! Before a payment's membership was activated in the payment's own transaction, a process
//! manager followed the log: a confirmed payment activated (or extended) the buyer's
//! membership, a full refund took back the period that order bought. A log from then can end
//! with a payment whose membership was never activated. At start-up, this reads the log after
//! that process manager's checkpoint and finishes such work, each fact with its checkpoint in
//! one transaction, then stops. Payments that recorded their grant (`membership` on
//! `PaymentConfirmed`) were handled in their own transaction and are skipped.

use std::time::Duration;

use aggregates::{
    Order, OrderEvent, OrderId, OrderStatus, Subscription, SubscriptionCommand, SubscriptionError,
};
use chrono::Utc;
use cqrs_es::Aggregate;
use projections::log::{self, LedgerEvent, StoredEvent};
use sqlx::{AnyConnection, Row};

use crate::ledger::settle::{legacy_grant, LegacyGrant};
use crate::store::load::{self, Refusal};
use crate::store::{append, Actor, Attempt, EventMetadata, Source, Store, StreamAppend};

const PROCESS_NAME: &str = "membership";
const BATCH_SIZE: i64 = 200;
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Log(#[from] projections::LogError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("finishing a membership failed: {0}")]
    Command(String),
}

impl From<Attempt<std::convert::Infallible>> for ProcessError {
    fn from(attempt: Attempt<std::convert::Infallible>) -> Self {
        match attempt {
            Attempt::Conflict => Self::Command("another writer changed the membership".to_owned()),
            Attempt::Refused(never) => match never {},
            Attempt::Failed(detail) => Self::Command(detail),
        }
    }
}

/// Finishes what the log left undone, then returns.
pub async fn finish(store: Store) {
    loop {
        match run_batch(&store).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "finishing earlier membership work failed; retrying");
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

/// Acts on the next batch of events after the checkpoint; returns how many were read.
pub async fn run_batch(store: &Store) -> Result<usize, ProcessError> {
    sqlx::query(
        "INSERT INTO process_checkpoints (process, position) VALUES ($1, 0) \
         ON CONFLICT (process) DO NOTHING",
    )
    .bind(PROCESS_NAME)
    .execute(&store.read)
    .await?;
    let checkpoint: i64 =
        sqlx::query("SELECT position FROM process_checkpoints WHERE process = $1")
            .bind(PROCESS_NAME)
            .fetch_one(&store.read)
            .await?
            .try_get("position")?;
    let events = log::read_after(&store.read, checkpoint, BATCH_SIZE).await?;
    let Some(last) = events.last().map(|event| event.position) else {
        return Ok(0);
    };
    for event in events.iter().filter(|event| needs_a_look(event)) {
        act(store, event).await?;
    }
    sqlx::query(
        "UPDATE process_checkpoints SET position = $1 WHERE process = $2 AND position < $1",
    )
    .bind(last)
    .bind(PROCESS_NAME)
    .execute(&store.read)
    .await?;
    Ok(events.len())
}

/// Payments that did not record their grant, and refunds (which may end such an order).
fn needs_a_look(event: &StoredEvent) -> bool {
    matches!(
        &event.event,
        LedgerEvent::Order(
            OrderEvent::PaymentConfirmed {
                membership: None,
                ..
            } | OrderEvent::Refunded { .. }
        )
    )
}

/// Activates or revokes what `event` calls for, if it was not done, with the checkpoint at
/// `event` in the same transaction.
async fn act(store: &Store, event: &StoredEvent) -> Result<(), ProcessError> {
    let mut transaction = store.begin_write().await?;
    let Some((user_id, append)) = change(&mut transaction, event).await? else {
        transaction.rollback().await?;
        return Ok(());
    };
    let metadata = EventMetadata {
        request_id: format!("process-{PROCESS_NAME}-{}", event.position),
        actor: Actor::System,
        source: Source::Process,
        gateway_event_id: event.metadata.get("gateway_event_id").cloned(),
        recorded_at: Utc::now(),
    };
    let appended = append::append(
        &mut transaction,
        store.dialect(),
        std::slice::from_ref(&append),
        &metadata,
    )
    .await
    .map_err(|error| ProcessError::Command(error.to_string()))?;
    sqlx::query(
        "UPDATE process_checkpoints SET position = $1 WHERE process = $2 AND position < $1",
    )
    .bind(event.position)
    .bind(PROCESS_NAME)
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await?;
    store.published(&appended, Vec::new());
    tracing::info!(order = %event.aggregate_id, user = %user_id, "earlier membership work finished");
    Ok(())
}

async fn change(
    transaction: &mut AnyConnection,
    event: &StoredEvent,
) -> Result<Option<(String, StreamAppend)>, ProcessError> {
    let order = order_as_of(transaction, event).await?;
    let (Some(user_id), Ok(order_id)) = (
        order.user_id().cloned(),
        event.aggregate_id.parse::<OrderId>(),
    ) else {
        return Ok(None);
    };
    let already = legacy_grant(transaction, &user_id, &order_id).await?;
    let command = match &event.event {
        LedgerEvent::Order(OrderEvent::PaymentConfirmed { paid_at, .. }) => {
            if already != LegacyGrant::Never {
                return Ok(None);
            }
            let (Some(plan_id), Some(tier), Some(period)) =
                (order.plan_id().cloned(), order.tier(), order.period())
            else {
                return Ok(None);
            };
            SubscriptionCommand::ActivateMembership {
                user_id: user_id.clone(),
                order_id,
                plan_id,
                tier,
                period,
                at: *paid_at,
            }
        }
        LedgerEvent::Order(OrderEvent::Refunded { refunded_at, .. })
            if order.status() == Some(OrderStatus::Refunded)
                && order.granted_membership().is_none() =>
        {
            let LegacyGrant::Live(granted) = already else {
                return Ok(None);
            };
            SubscriptionCommand::RevokeMembership {
                order_id,
                granted,
                at: *refunded_at,
            }
        }
        _ => return Ok(None),
    };
    let subscription = load::load::<Subscription>(transaction, user_id.as_ref())
        .await
        .map_err(|error| ProcessError::Command(error.to_string()))?;
    match subscription.decide(user_id.as_ref(), command) {
        Ok(decision) if decision.append.events.is_empty() => Ok(None),
        Ok(decision) => Ok(Some((user_id.to_string(), decision.append))),
        Err(Refusal::Domain(SubscriptionError::OrderNotActivated { .. })) => Ok(None),
        Err(Refusal::Domain(error)) => {
            tracing::error!(order = %event.aggregate_id, code = error.code(), %error, "membership refused");
            Ok(None)
        }
        Err(Refusal::Encode(error)) => Err(ProcessError::Command(error.to_string())),
    }
}

/// The order's state right after `event` (folding its stream up to that event).
async fn order_as_of(
    transaction: &mut AnyConnection,
    event: &StoredEvent,
) -> Result<Order, ProcessError> {
    let mut order = Order::default();
    for stored in log::read_stream_in(transaction, Order::TYPE, &event.aggregate_id).await? {
        if stored.sequence > event.sequence {
            break;
        }
        if let LedgerEvent::Order(order_event) = stored.event {
            order.apply(&order_event);
        }
    }
    Ok(order)
}
