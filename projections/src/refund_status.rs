//! The refund-status view: one row per refund, so the API can answer what became of one.

use aggregates::OrderEvent;
use sqlx::{AnyConnection, AnyPool, Row};

use crate::error::ProjectionError;
use crate::log::StoredEvent;
use crate::schema::{timestamp, Tables};
use crate::sql::{execute, Bind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRow {
    pub refund_id: String,
    pub order_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: String,
    pub reason: String,
    pub gateway_refund_id: Option<String>,
    pub requested_at: String,
    pub completed_at: Option<String>,
}

/// Applies one order event; only refund events touch this view.
pub async fn apply(
    connection: &mut AnyConnection,
    tables: &Tables,
    stored: &StoredEvent,
    event: &OrderEvent,
) -> Result<(), ProjectionError> {
    let t = &tables.refund_status;
    let (sql, binds) = match event {
        OrderEvent::RefundRequested {
            refund_id,
            amount,
            reason,
            requested_at,
        } => (
            format!(
                "INSERT INTO {t} (refund_id, order_id, amount_minor, currency, status, reason, \
                 gateway_refund_id, requested_at, completed_at, last_position) \
                 VALUES ($1, $2, $3, $4, 'pending', $5, NULL, $6, NULL, $7) \
                 ON CONFLICT (refund_id) DO NOTHING"
            ),
            vec![
                Bind::Text(refund_id.to_string()),
                Bind::Text(stored.aggregate_id.clone()),
                Bind::Int(amount.amount_minor()),
                Bind::Text(amount.currency().code().to_owned()),
                Bind::Text(reason.clone()),
                Bind::Text(timestamp(requested_at)),
                Bind::Int(stored.position),
            ],
        ),
        OrderEvent::Refunded {
            refund_id,
            gateway_refund_id,
            refunded_at,
            ..
        } => completion(
            t,
            refund_id,
            "succeeded",
            gateway_refund_id,
            refunded_at,
            stored,
        ),
        OrderEvent::RefundFailed {
            refund_id,
            gateway_refund_id,
            failed_at,
            ..
        } => completion(t, refund_id, "failed", gateway_refund_id, failed_at, stored),
        OrderEvent::OrderCreated { .. }
        | OrderEvent::ChargeRequested { .. }
        | OrderEvent::PaymentConfirmed { .. }
        | OrderEvent::PaymentAmountMismatch { .. }
        | OrderEvent::LatePaymentReceived { .. }
        | OrderEvent::DuplicatePaymentReceived { .. }
        | OrderEvent::PaymentFailed { .. }
        | OrderEvent::OrderExpired { .. }
        | OrderEvent::OrderCancelled { .. } => return Ok(()),
    };
    execute(connection, &sql, binds).await
}

fn completion(
    table: &str,
    refund_id: &aggregates::RefundId,
    status: &str,
    gateway_refund_id: &Option<aggregates::GatewayRefundId>,
    at: &chrono::DateTime<chrono::Utc>,
    stored: &StoredEvent,
) -> (String, Vec<Bind>) {
    (
        format!(
            "UPDATE {table} SET status = $2, gateway_refund_id = $3, completed_at = $4, \
             last_position = $5 WHERE refund_id = $1"
        ),
        vec![
            Bind::Text(refund_id.to_string()),
            Bind::Text(status.to_owned()),
            Bind::OptText(gateway_refund_id.as_ref().map(ToString::to_string)),
            Bind::Text(timestamp(at)),
            Bind::Int(stored.position),
        ],
    )
}

/// One refund by id.
pub async fn find(
    pool: &AnyPool,
    tables: &Tables,
    refund_id: &str,
) -> Result<Option<RefundRow>, sqlx::Error> {
    let sql = format!(
        "SELECT refund_id, order_id, amount_minor, currency, status, reason, gateway_refund_id, \
         requested_at, completed_at FROM {t} WHERE refund_id = $1",
        t = tables.refund_status
    );
    let Some(row) = sqlx::query(&sql)
        .bind(refund_id)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(RefundRow {
        refund_id: row.try_get("refund_id")?,
        order_id: row.try_get("order_id")?,
        amount_minor: row.try_get("amount_minor")?,
        currency: row.try_get("currency")?,
        status: row.try_get("status")?,
        reason: row.try_get("reason")?,
        gateway_refund_id: row.try_get("gateway_refund_id")?,
        requested_at: row.try_get("requested_at")?,
        completed_at: row.try_get("completed_at")?,
    }))
}
