//! The refund-status view: one row per refund, so the API can answer what became of one.

use sqlx::{AnyPool, Row};

use crate::schema::Tables;

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
