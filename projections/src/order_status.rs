//! The order-status view: one row per order, everything the polling endpoint answers.

use sqlx::{AnyConnection, AnyPool, Row};

use crate::schema::Tables;

/// One order as the polling endpoint shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderStatusRow {
    pub order_id: String,
    pub user_id: String,
    pub plan_id: String,
    pub plan_name: String,
    pub tier: String,
    pub period: String,
    pub channel: String,
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    pub paid_minor: i64,
    pub refunded_minor: i64,
    pub refund_pending_minor: i64,
    pub needs_refund_minor: i64,
    pub needs_review: bool,
    pub charge_id: Option<String>,
    pub qr_code: Option<String>,
    pub expires_at: Option<String>,
    pub paid_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_position: i64,
}

const COLUMNS: &str = "order_id, user_id, plan_id, plan_name, tier, period, channel, status, \
    amount_minor, currency, paid_minor, refunded_minor, refund_pending_minor, needs_refund_minor, \
    needs_review, charge_id, qr_code, expires_at, paid_at, created_at, updated_at, last_position";

fn decode(row: &sqlx::any::AnyRow) -> Result<OrderStatusRow, sqlx::Error> {
    Ok(OrderStatusRow {
        order_id: row.try_get("order_id")?,
        user_id: row.try_get("user_id")?,
        plan_id: row.try_get("plan_id")?,
        plan_name: row.try_get("plan_name")?,
        tier: row.try_get("tier")?,
        period: row.try_get("period")?,
        channel: row.try_get("channel")?,
        status: row.try_get("status")?,
        amount_minor: row.try_get("amount_minor")?,
        currency: row.try_get("currency")?,
        paid_minor: row.try_get("paid_minor")?,
        refunded_minor: row.try_get("refunded_minor")?,
        refund_pending_minor: row.try_get("refund_pending_minor")?,
        needs_refund_minor: row.try_get("needs_refund_minor")?,
        needs_review: row.try_get::<i64, _>("needs_review")? != 0,
        charge_id: row.try_get("charge_id")?,
        qr_code: row.try_get("qr_code")?,
        expires_at: row.try_get("expires_at")?,
        paid_at: row.try_get("paid_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_position: row.try_get("last_position")?,
    })
}

/// One order by id.
pub async fn find<'c>(
    pool: impl sqlx::Executor<'c, Database = sqlx::Any>,
    tables: &Tables,
    order_id: &str,
) -> Result<Option<OrderStatusRow>, sqlx::Error> {
    one_where(pool, tables, "order_id = $1", order_id).await
}

/// The order a gateway charge belongs to.
pub async fn find_by_charge(
    pool: &AnyPool,
    tables: &Tables,
    charge_id: &str,
) -> Result<Option<OrderStatusRow>, sqlx::Error> {
    one_where(pool, tables, "charge_id = $1", charge_id).await
}

/// Orders still awaiting payment whose QR code expired before `now` (RFC 3339).
pub async fn pending_expired_before(
    pool: &AnyPool,
    tables: &Tables,
    now: &str,
    limit: i64,
) -> Result<Vec<OrderStatusRow>, sqlx::Error> {
    oldest_where(
        pool,
        tables,
        "status IN ('created', 'pending') AND expires_at < $1",
        "expires_at",
        now,
        limit,
    )
    .await
}

/// A user's orders still awaiting payment whose QR code is payable at `now` (RFC 3339),
/// newest first. Read on a connection, so a command can check it in its own transaction.
pub async fn open_for_user(
    connection: &mut AnyConnection,
    tables: &Tables,
    user_id: &str,
    now: &str,
    limit: i64,
) -> Result<Vec<OrderStatusRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {t} WHERE user_id = $1 AND status IN ('created', 'pending') \
         AND (expires_at IS NULL OR expires_at > $2) ORDER BY created_at DESC LIMIT $3",
        t = tables.order_status
    );
    let rows = sqlx::query(&sql)
        .bind(user_id)
        .bind(now)
        .bind(limit)
        .fetch_all(connection)
        .await?;
    rows.iter().map(decode).collect()
}

/// Orders still awaiting payment whose last change is older than `before` and whose next
/// check in `schedule` (the reconciler's table) is due at `now`: never-checked orders first,
/// oldest first, then by when their check fell due. Orders already flagged for review (money
/// of the wrong amount arrived) are left out: their money is recorded.
pub async fn pending_due_for_check(
    pool: &AnyPool,
    tables: &Tables,
    schedule: &str,
    before: &str,
    now: &str,
    limit: i64,
) -> Result<Vec<OrderStatusRow>, sqlx::Error> {
    let sql = format!(
        "SELECT o.* FROM {t} o LEFT JOIN {schedule} s ON s.order_id = o.order_id \
         WHERE o.status = 'pending' AND o.needs_review = 0 AND o.updated_at < $1 \
         AND (s.next_check_at IS NULL OR s.next_check_at <= $2) \
         ORDER BY (s.order_id IS NOT NULL), COALESCE(s.next_check_at, o.updated_at) LIMIT $3",
        t = tables.order_status
    );
    let rows = sqlx::query(&sql)
        .bind(before)
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode).collect()
}

/// Orders that never got a charge (the process stopped between recording the order and the
/// gateway's answer) created before `before`: nothing can pay them.
pub async fn created_without_charge_before(
    pool: &AnyPool,
    tables: &Tables,
    before: &str,
    limit: i64,
) -> Result<Vec<OrderStatusRow>, sqlx::Error> {
    oldest_where(
        pool,
        tables,
        "status = 'created' AND created_at < $1",
        "created_at",
        before,
        limit,
    )
    .await
}

/// The row matching `condition` (which binds `$1` to `value`), if any.
async fn one_where<'c>(
    pool: impl sqlx::Executor<'c, Database = sqlx::Any>,
    tables: &Tables,
    condition: &str,
    value: &str,
) -> Result<Option<OrderStatusRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {t} WHERE {condition}",
        t = tables.order_status
    );
    let row = sqlx::query(&sql).bind(value).fetch_optional(pool).await?;
    row.as_ref().map(decode).transpose()
}

/// At most `limit` rows matching `condition` (which binds `$1` to `value`), by `order_by`.
async fn oldest_where(
    pool: &AnyPool,
    tables: &Tables,
    condition: &str,
    order_by: &str,
    value: &str,
    limit: i64,
) -> Result<Vec<OrderStatusRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {t} WHERE {condition} ORDER BY {order_by} LIMIT $2",
        t = tables.order_status
    );
    let rows = sqlx::query(&sql)
        .bind(value)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode).collect()
}
