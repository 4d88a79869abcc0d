//! When the reconciler asks the gateway about a pending order again. Each check of an order
//! that is still unpaid pushes its next one further out (doubling, up to a ceiling), so a flood
//! of abandoned orders is looked at less and less often while a newly stale order, never
//! checked, is always first in line.

use std::time::Duration;

use chrono::{DateTime, Utc};
use projections::order_status::{self, OrderStatusRow};
use projections::schema::timestamp;
use projections::Tables;
use sqlx::AnyPool;

/// The reconciler's schedule table.
pub const TABLE: &str = "reconcile_schedule";
/// The longest wait between two checks of one order.
pub const RECHECK_MAX: Duration = Duration::from_secs(10 * 60);
/// Doublings of the first wait before the ceiling applies.
const BACKOFF_DOUBLINGS_MAX: u32 = 10;

/// Pending orders older than `before` whose check is due at `now`, at most `limit`.
pub async fn due(
    pool: &AnyPool,
    before: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<OrderStatusRow>, sqlx::Error> {
    order_status::pending_due_for_check(
        pool,
        &Tables::live(),
        TABLE,
        &timestamp(&before),
        &timestamp(&now),
        limit,
    )
    .await
}

/// How long after its `checks`-th check (counting from one) an order is checked again:
/// `first`, doubled each time, at most `RECHECK_MAX`.
pub fn wait_after(checks: u32, first: Duration) -> Duration {
    let doublings = checks.saturating_sub(1).min(BACKOFF_DOUBLINGS_MAX);
    first
        .max(Duration::from_secs(1))
        .saturating_mul(1 << doublings)
        .min(RECHECK_MAX)
}

/// Records a check of `order_id` at `now` that left it pending.
pub async fn checked(
    pool: &AnyPool,
    order_id: &str,
    now: DateTime<Utc>,
    first_wait: Duration,
) -> Result<(), sqlx::Error> {
    let previous: Option<i64> =
        sqlx::query_scalar(&format!("SELECT checks FROM {TABLE} WHERE order_id = $1"))
            .bind(order_id)
            .fetch_optional(pool)
            .await?;
    let checks = u32::try_from(previous.unwrap_or(0))
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let wait =
        chrono::Duration::from_std(wait_after(checks, first_wait)).unwrap_or(chrono::Duration::MAX);
    let next = now.checked_add_signed(wait).unwrap_or(now);
    sqlx::query(&format!(
        "INSERT INTO {TABLE} (order_id, checks, next_check_at) VALUES ($1, $2, $3) \
         ON CONFLICT (order_id) DO UPDATE SET checks = $2, next_check_at = $3"
    ))
    .bind(order_id)
    .bind(i64::from(checks))
    .bind(timestamp(&next))
    .execute(pool)
    .await?;
    Ok(())
}

/// Drops the schedule of orders that are no longer pending.
pub async fn forget_settled(pool: &AnyPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(&format!(
        "DELETE FROM {TABLE} WHERE order_id NOT IN \
         (SELECT order_id FROM {orders} WHERE status = 'pending')",
        orders = Tables::live().order_status
    ))
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_the_ceiling() {
        let first = Duration::from_secs(60);
        assert_eq!(wait_after(1, first), Duration::from_secs(60));
        assert_eq!(wait_after(2, first), Duration::from_secs(120));
        assert_eq!(wait_after(4, first), Duration::from_secs(480));
        assert_eq!(wait_after(5, first), RECHECK_MAX);
        assert_eq!(wait_after(u32::MAX, first), RECHECK_MAX);
        // An immediate first check still waits a moment before the next.
        assert_eq!(wait_after(1, Duration::ZERO), Duration::from_secs(1));
    }
}
