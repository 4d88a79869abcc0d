//! Settling verified gateway facts into the ledger: a confirmed charge becomes the order's
//! payment, a refund notice completes the refund. Webhooks and the reconciler both come here,
//! so money is recorded the same way whichever door it came through.
//!
//! Every verified event is kept in `gateway_events` with what became of it, before we answer:
//! nothing a gateway told us is lost, even when no order matches it.

use aggregates::{Order, OrderCommand, OrderError, OrderId};
use chrono::Utc;
use cqrs_es::{Aggregate, AggregateError};
use sqlx::AnyPool;

use crate::state::AppState;
use crate::store::{Actor, EventMetadata, Source};
use gateways::{order_id_from_order_no, GatewayEvent};

/// What became of a gateway event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Appended to the order's log.
    Applied,
    /// Already in the log (a redelivery or replay): nothing new appended.
    Duplicate,
    /// No order of ours matches: kept for reconciliation.
    Unmatched,
    /// A type we do not act on: kept for audit.
    Ignored,
    /// The order is not ready for it yet (e.g. a refund notice before the refund was
    /// recorded): kept, and the gateway is asked to deliver it again later.
    Deferred,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Unmatched => "unmatched",
            Self::Ignored => "ignored",
            Self::Deferred => "deferred",
        }
    }

    /// Whether the gateway should consider the delivery done.
    pub fn acknowledged(self) -> bool {
        !matches!(self, Self::Deferred)
    }
}

/// The result of settling one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub outcome: Outcome,
    pub order_id: Option<String>,
    /// The order's stream head after settling (0 when no order).
    pub position: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SettlementError {
    #[error("recording the gateway event failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Log(#[from] projections::LogError),
    /// The command could not be appended (database down, conflicts exhausted): the gateway
    /// must deliver again.
    #[error("appending to the ledger failed: {0}")]
    Append(String),
}

/// Settles one verified event. `raw` is the body as received, kept for audit.
pub async fn settle(
    state: &AppState,
    event: &GatewayEvent,
    raw: &str,
    source: Source,
    request_id: &str,
) -> Result<Settled, SettlementError> {
    let provider = state.gateway.provider();
    let event_id = event.event_id().to_string();
    record(&state.store.read, provider, event, raw, None, "received").await?;

    let target = target_order(state, event).await?;
    let Some((order_id, command)) = target else {
        let outcome = if matches!(event, GatewayEvent::Other { .. }) {
            Outcome::Ignored
        } else {
            Outcome::Unmatched
        };
        tracing::warn!(
            provider,
            event_id,
            outcome = outcome.as_str(),
            "gateway event matched no order"
        );
        record(
            &state.store.read,
            provider,
            event,
            raw,
            None,
            outcome.as_str(),
        )
        .await?;
        return Ok(Settled {
            outcome,
            order_id: None,
            position: 0,
        });
    };

    let id = order_id.to_string();
    let before = projections::log::stream_head(&state.store.read, Order::TYPE, &id).await?;
    let metadata = EventMetadata {
        request_id: request_id.to_owned(),
        actor: Actor::Gateway,
        source,
        gateway_event_id: Some(event_id.clone()),
        recorded_at: Utc::now(),
    };
    // The order's head after the command is the position this delivery is answered with.
    let (outcome, position) = match state.orders.execute(&id, command, &metadata).await {
        Ok(()) => {
            let after = projections::log::stream_head(&state.store.read, Order::TYPE, &id).await?;
            if after > before {
                warn_if_flagged(state, &id, after).await;
                (Outcome::Applied, after)
            } else {
                (Outcome::Duplicate, after)
            }
        }
        Err(AggregateError::UserError(error)) => (classify(&error), before),
        Err(error) => return Err(SettlementError::Append(error.to_string())),
    };
    state.views.wake();
    tracing::info!(
        provider,
        event_id,
        event_type = event.event_type(),
        order_id = %id,
        outcome = outcome.as_str(),
        "gateway event settled"
    );
    record(
        &state.store.read,
        provider,
        event,
        raw,
        Some(&id),
        outcome.as_str(),
    )
    .await?;
    Ok(Settled {
        outcome,
        order_id: Some(id),
        position,
    })
}

/// Money that did not simply confirm an order (wrong amount, after expiry, a second charge)
/// is appended like any fact, and also logged loudly for the people who settle it.
async fn warn_if_flagged(state: &AppState, order_id: &str, position: i64) {
    let Ok(events) = projections::log::read_after(&state.store.read, position - 1, 1).await else {
        return;
    };
    if let Some(event) = events.first() {
        if matches!(
            event.event_type.as_str(),
            "PaymentAmountMismatch" | "LatePaymentReceived" | "DuplicatePaymentReceived"
        ) {
            tracing::warn!(order_id, event = %event.event_type, "money needs review or refund");
        }
    }
}

/// Domain refusals of a gateway fact: either it does not belong to the order (unmatched, kept)
/// or it came too early (deferred, redelivered later).
fn classify(error: &OrderError) -> Outcome {
    match error {
        OrderError::NotCreated | OrderError::ChargeMismatch { .. } => Outcome::Unmatched,
        OrderError::UnknownRefund { .. } | OrderError::InvalidTransition { .. } => {
            Outcome::Deferred
        }
        OrderError::AlreadyCreated
        | OrderError::NotPurchasable { .. }
        | OrderError::ExpiryNotInFuture { .. }
        | OrderError::NotYetExpired { .. }
        | OrderError::NonPositiveAmount
        | OrderError::CurrencyMismatch { .. }
        | OrderError::RefundExceedsRefundable { .. }
        | OrderError::RefundAlreadyRequested { .. }
        | OrderError::TooManyRefunds { .. }
        | OrderError::TextTooLong { .. }
        | OrderError::Ledger(_) => Outcome::Unmatched,
    }
}

/// The order a gateway event is about, and the command it means for that order.
async fn target_order(
    state: &AppState,
    event: &GatewayEvent,
) -> Result<Option<(OrderId, OrderCommand)>, SettlementError> {
    let now = Utc::now();
    Ok(match event {
        GatewayEvent::ChargeSucceeded { event_id, charge } => {
            order_id_from_order_no(&charge.order_no).map(|order_id| {
                (
                    order_id,
                    OrderCommand::ConfirmPayment {
                        charge_id: charge.charge_id.clone(),
                        gateway_event_id: Some(event_id.clone()),
                        amount: charge.amount,
                        transaction_no: charge.transaction_no.clone(),
                        paid_at: charge.time_paid.unwrap_or(now),
                        at: now,
                    },
                )
            })
        }
        GatewayEvent::ChargeFailed { event_id, charge } => order_id_from_order_no(&charge.order_no)
            .map(|order_id| {
                (
                    order_id,
                    OrderCommand::FailPayment {
                        charge_id: charge.charge_id.clone(),
                        gateway_event_id: Some(event_id.clone()),
                        failure_code: charge.failure_code.clone(),
                        failure_message: charge.failure_message.clone(),
                        at: now,
                    },
                )
            }),
        GatewayEvent::RefundSucceeded { event_id, refund } => {
            let order = refund_order(state, refund).await?;
            order.zip(refund.refund_id).map(|(order_id, refund_id)| {
                (
                    order_id,
                    OrderCommand::ConfirmRefund {
                        refund_id,
                        gateway_refund_id: Some(refund.gateway_refund_id.clone()),
                        gateway_event_id: Some(event_id.clone()),
                        at: now,
                    },
                )
            })
        }
        GatewayEvent::RefundFailed { event_id, refund } => {
            let order = refund_order(state, refund).await?;
            order.zip(refund.refund_id).map(|(order_id, refund_id)| {
                (
                    order_id,
                    OrderCommand::FailRefund {
                        refund_id,
                        gateway_refund_id: Some(refund.gateway_refund_id.clone()),
                        gateway_event_id: Some(event_id.clone()),
                        failure_code: refund.failure_code.clone(),
                        failure_message: refund.failure_message.clone(),
                        at: now,
                    },
                )
            })
        }
        GatewayEvent::Other { .. } => None,
    })
}

/// A refund's order: from the charge's order number, else by the charge id in the views.
async fn refund_order(
    state: &AppState,
    refund: &gateways::RefundFacts,
) -> Result<Option<OrderId>, SettlementError> {
    if let Some(order_id) = refund
        .charge_order_no
        .as_deref()
        .and_then(order_id_from_order_no)
    {
        return Ok(Some(order_id));
    }
    let row = projections::order_status::find_by_charge(
        &state.store.read,
        &projections::Tables::live(),
        refund.charge_id.as_ref(),
    )
    .await?;
    Ok(row.and_then(|row| row.order_id.parse().ok()))
}

/// Upserts the event's row in the inbox with its latest outcome.
async fn record(
    pool: &AnyPool,
    provider: &str,
    event: &GatewayEvent,
    raw: &str,
    order_id: Option<&str>,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    let now = projections::schema::timestamp(&Utc::now());
    // A first sighting counts a delivery; later updates of the same delivery only change the
    // outcome (a final outcome is never downgraded back to "received").
    sqlx::query(
        "INSERT INTO gateway_events (provider, event_id, event_type, order_id, outcome, body, \
         received_at, updated_at, deliveries) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1) \
         ON CONFLICT (provider, event_id) DO UPDATE SET \
           deliveries = CASE WHEN $5 = 'received' THEN gateway_events.deliveries + 1 \
                             ELSE gateway_events.deliveries END, \
           outcome = CASE WHEN $5 = 'received' THEN gateway_events.outcome ELSE $5 END, \
           order_id = coalesce($4, gateway_events.order_id), \
           updated_at = $7",
    )
    .bind(provider)
    .bind(event.event_id().to_string())
    .bind(event.event_type().to_owned())
    .bind(order_id.map(ToOwned::to_owned))
    .bind(outcome.to_owned())
    .bind(raw.to_owned())
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}
