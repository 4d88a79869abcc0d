//! The transaction-history view: one entry per money movement (payment, refund, late or
//! duplicate payment, mismatched payment), per user, in log order.

use aggregates::{Money, OrderEvent};
use sqlx::{AnyPool, Row};

use crate::schema::{timestamp, Tables};

/// Largest page the history endpoint may ask for.
pub const PAGE_SIZE_MAX: i64 = 100;

/// One money movement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub entry_id: String,
    pub position: i64,
    pub user_id: String,
    pub order_id: String,
    pub kind: String,
    pub amount_minor: i64,
    pub currency: String,
    pub channel: String,
    pub gateway_ref: Option<String>,
    pub at: String,
}

/// What kind of movement an order event is, if it moves money.
pub(crate) fn movement(
    event: &OrderEvent,
) -> Option<(&'static str, &Money, Option<String>, String)> {
    match event {
        OrderEvent::PaymentConfirmed {
            charge_id,
            amount,
            paid_at,
            ..
        } => Some((
            "payment",
            amount,
            Some(charge_id.to_string()),
            timestamp(paid_at),
        )),
        OrderEvent::PaymentAmountMismatch {
            charge_id,
            received,
            received_at,
            ..
        } => Some((
            "mismatched_payment",
            received,
            Some(charge_id.to_string()),
            timestamp(received_at),
        )),
        OrderEvent::LatePaymentReceived {
            charge_id,
            amount,
            received_at,
            ..
        } => Some((
            "late_payment",
            amount,
            Some(charge_id.to_string()),
            timestamp(received_at),
        )),
        OrderEvent::DuplicatePaymentReceived {
            charge_id,
            amount,
            received_at,
            ..
        } => Some((
            "duplicate_payment",
            amount,
            Some(charge_id.to_string()),
            timestamp(received_at),
        )),
        OrderEvent::Refunded {
            refund_id,
            gateway_refund_id,
            amount,
            refunded_at,
            ..
        } => Some((
            "refund",
            amount,
            Some(
                gateway_refund_id
                    .as_ref()
                    .map_or_else(|| refund_id.to_string(), ToString::to_string),
            ),
            timestamp(refunded_at),
        )),
        OrderEvent::OrderCreated { .. }
        | OrderEvent::ChargeRequested { .. }
        | OrderEvent::PaymentFailed { .. }
        | OrderEvent::OrderExpired { .. }
        | OrderEvent::OrderCancelled { .. }
        | OrderEvent::RefundRequested { .. }
        | OrderEvent::RefundFailed { .. } => None,
    }
}

fn decode(row: &sqlx::any::AnyRow) -> Result<HistoryEntry, sqlx::Error> {
    Ok(HistoryEntry {
        entry_id: row.try_get("entry_id")?,
        position: row.try_get("position")?,
        user_id: row.try_get("user_id")?,
        order_id: row.try_get("order_id")?,
        kind: row.try_get("kind")?,
        amount_minor: row.try_get("amount_minor")?,
        currency: row.try_get("currency")?,
        channel: row.try_get("channel")?,
        gateway_ref: row.try_get("gateway_ref")?,
        at: row.try_get("at")?,
    })
}

/// A user's entries, newest first, strictly before the `before` position when given.
pub async fn page(
    pool: &AnyPool,
    tables: &Tables,
    user_id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    let sql = format!(
        "SELECT entry_id, position, user_id, order_id, kind, amount_minor, currency, channel, \
         gateway_ref, at FROM {t} WHERE user_id = $1 AND position < $2 \
         ORDER BY position DESC LIMIT $3",
        t = tables.transaction_history
    );
    let rows = sqlx::query(&sql)
        .bind(user_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, PAGE_SIZE_MAX))
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode).collect()
}

/// Count and sum (minor units) of every kind of movement, for monitoring.
pub async fn totals_by_kind(
    pool: &AnyPool,
    tables: &Tables,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    let sql = format!(
        "SELECT kind, CAST(count(*) AS BIGINT) AS n, CAST(coalesce(sum(amount_minor), 0) AS BIGINT) AS total \
         FROM {t} GROUP BY kind ORDER BY kind",
        t = tables.transaction_history
    );
    let rows = sqlx::query(&sql).fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("kind")?,
                row.try_get("n")?,
                row.try_get("total")?,
            ))
        })
        .collect()
}
