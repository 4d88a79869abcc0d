//! The order-status view: one row per order, everything the polling endpoint answers.

use aggregates::OrderEvent;
use sqlx::{AnyConnection, AnyPool, Row};

use crate::error::ProjectionError;
use crate::log::StoredEvent;
use crate::schema::{timestamp, Tables};
use crate::sql::{enum_text, execute, Bind};

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

/// Statuses of an order closed unpaid, as SQL literals: refunds there give back late money.
const CLOSED_STATUSES: &str = "'expired', 'failed', 'cancelled'";

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
/// newest first.
pub async fn open_for_user(
    pool: &AnyPool,
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
        .fetch_all(pool)
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

/// User id and channel of an order, for views that record money movements.
pub(crate) async fn owner_and_channel(
    connection: &mut AnyConnection,
    tables: &Tables,
    order_id: &str,
    position: i64,
) -> Result<(String, String), ProjectionError> {
    let sql = format!(
        "SELECT user_id, channel FROM {t} WHERE order_id = $1",
        t = tables.order_status
    );
    let row = sqlx::query(&sql)
        .bind(order_id)
        .fetch_optional(&mut *connection)
        .await?
        .ok_or_else(|| ProjectionError::MissingRow {
            position,
            what: "order",
            id: order_id.to_owned(),
        })?;
    Ok((row.try_get("user_id")?, row.try_get("channel")?))
}

/// Applies one order event to the view.
pub async fn apply(
    connection: &mut AnyConnection,
    tables: &Tables,
    stored: &StoredEvent,
    event: &OrderEvent,
) -> Result<(), ProjectionError> {
    let t = &tables.order_status;
    let order_id = stored.aggregate_id.as_str();
    let position = stored.position;
    let (sql, binds): (String, Vec<Bind>) = match event {
        OrderEvent::OrderCreated {
            order_id: _,
            user_id,
            plan_id,
            plan_name,
            tier,
            period,
            amount,
            channel,
            created_at,
        } => (
            format!(
                "INSERT INTO {t} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, 'created', $8, $9, \
                 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL, $10, $10, $11) \
                 ON CONFLICT (order_id) DO NOTHING"
            ),
            vec![
                Bind::Text(order_id.to_owned()),
                Bind::Text(user_id.to_string()),
                Bind::Text(plan_id.to_string()),
                Bind::Text(plan_name.clone()),
                Bind::Text(enum_text(tier)),
                Bind::Text(enum_text(period)),
                Bind::Text(channel.as_str().to_owned()),
                Bind::Int(amount.amount_minor()),
                Bind::Text(amount.currency().code().to_owned()),
                Bind::Text(timestamp(created_at)),
                Bind::Int(position),
            ],
        ),
        OrderEvent::ChargeRequested {
            charge_id,
            qr_code,
            expires_at,
            requested_at,
        } => (
            format!(
                "UPDATE {t} SET status = 'pending', charge_id = $2, qr_code = $3, expires_at = $4, \
                 updated_at = $5, last_position = $6 WHERE order_id = $1"
            ),
            vec![
                Bind::Text(order_id.to_owned()),
                Bind::Text(charge_id.to_string()),
                Bind::Text(qr_code.clone()),
                Bind::Text(timestamp(expires_at)),
                Bind::Text(timestamp(requested_at)),
                Bind::Int(position),
            ],
        ),
        OrderEvent::PaymentConfirmed {
            amount, paid_at, ..
        } => (
            format!(
                "UPDATE {t} SET status = 'paid', paid_minor = $2, paid_at = $3, qr_code = NULL, \
                 updated_at = $3, last_position = $4 WHERE order_id = $1"
            ),
            vec![
                Bind::Text(order_id.to_owned()),
                Bind::Int(amount.amount_minor()),
                Bind::Text(timestamp(paid_at)),
                Bind::Int(position),
            ],
        ),
        OrderEvent::PaymentAmountMismatch { received_at, .. } => (
            format!(
                "UPDATE {t} SET needs_review = 1, updated_at = $2, last_position = $3 \
                 WHERE order_id = $1"
            ),
            vec![
                Bind::Text(order_id.to_owned()),
                Bind::Text(timestamp(received_at)),
                Bind::Int(position),
            ],
        ),
        OrderEvent::LatePaymentReceived {
            amount,
            received_at,
            ..
        }
        | OrderEvent::DuplicatePaymentReceived {
            amount,
            received_at,
            ..
        } => (
            format!(
                "UPDATE {t} SET needs_refund_minor = needs_refund_minor + $2, updated_at = $3, \
                 last_position = $4 WHERE order_id = $1"
            ),
            vec![
                Bind::Text(order_id.to_owned()),
                Bind::Int(amount.amount_minor()),
                Bind::Text(timestamp(received_at)),
                Bind::Int(position),
            ],
        ),
        OrderEvent::PaymentFailed { failed_at, .. } => {
            status_change(t, order_id, "failed", failed_at, position)
        }
        OrderEvent::OrderExpired { expired_at } => {
            status_change(t, order_id, "expired", expired_at, position)
        }
        OrderEvent::OrderCancelled { cancelled_at, .. } => {
            status_change(t, order_id, "cancelled", cancelled_at, position)
        }
        OrderEvent::RefundRequested {
            amount,
            requested_at,
            ..
        } => (
            format!(
                "UPDATE {t} SET refund_pending_minor = refund_pending_minor + $2, updated_at = $3, \
                 last_position = $4 WHERE order_id = $1"
            ),
            vec![
                Bind::Text(order_id.to_owned()),
                Bind::Int(amount.amount_minor()),
                Bind::Text(timestamp(requested_at)),
                Bind::Int(position),
            ],
        ),
        OrderEvent::Refunded {
            amount,
            refunded_at,
            ..
        } => (
            // Mirrors the aggregate: a paid order is refunded once everything paid went back;
            // a closed one stays closed and owes that much less of its late money.
            format!(
                "UPDATE {t} SET refund_pending_minor = refund_pending_minor - $2, \
                 refunded_minor = refunded_minor + $2, \
                 needs_refund_minor = CASE WHEN status IN ({closed}) \
                               THEN needs_refund_minor - $2 ELSE needs_refund_minor END, \
                 status = CASE WHEN status IN ({closed}) THEN status \
                               WHEN refunded_minor + $2 >= paid_minor THEN 'refunded' \
                               ELSE 'partially_refunded' END, \
                 updated_at = $3, last_position = $4 WHERE order_id = $1",
                closed = CLOSED_STATUSES
            ),
            vec![
                Bind::Text(order_id.to_owned()),
                Bind::Int(amount.amount_minor()),
                Bind::Text(timestamp(refunded_at)),
                Bind::Int(position),
            ],
        ),
        OrderEvent::RefundFailed {
            refund_id,
            failed_at,
            ..
        } => (
            format!(
                "UPDATE {t} SET refund_pending_minor = refund_pending_minor - \
                   (SELECT amount_minor FROM {r} WHERE refund_id = $2), \
                 updated_at = $3, last_position = $4 WHERE order_id = $1",
                r = tables.refund_status
            ),
            vec![
                Bind::Text(order_id.to_owned()),
                Bind::Text(refund_id.to_string()),
                Bind::Text(timestamp(failed_at)),
                Bind::Int(position),
            ],
        ),
    };
    execute(connection, &sql, binds).await
}

fn status_change(
    table: &str,
    order_id: &str,
    status: &'static str,
    at: &chrono::DateTime<chrono::Utc>,
    position: i64,
) -> (String, Vec<Bind>) {
    (
        format!(
            "UPDATE {table} SET status = $2, qr_code = NULL, updated_at = $3, last_position = $4 \
             WHERE order_id = $1"
        ),
        vec![
            Bind::Text(order_id.to_owned()),
            Bind::Text(status.to_owned()),
            Bind::Text(timestamp(at)),
            Bind::Int(position),
        ],
    )
}
