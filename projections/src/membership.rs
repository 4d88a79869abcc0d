//! The membership view: per user, the current entitlement and the orders that bought it.

use aggregates::Tier;
use sqlx::Row;

use crate::error::ProjectionError;
use crate::schema::Tables;

/// A user's membership as last recorded. Whether it is active *now* is decided by the
/// reader with its clock (`ends_at` in the future and status `active`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipRow {
    pub user_id: String,
    pub tier: String,
    pub plan_id: String,
    pub status: String,
    pub starts_at: String,
    pub ends_at: String,
    pub last_position: i64,
}

/// One order's contribution to a membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipOrderRow {
    pub order_id: String,
    pub plan_id: String,
    pub tier: String,
    pub period: String,
    pub starts_at: String,
    pub ends_at: String,
    pub revoked: bool,
}

pub(crate) fn parse_tier(text: String, position: i64) -> Result<Tier, ProjectionError> {
    serde_json::from_value(serde_json::Value::String(text.clone())).map_err(|_| {
        ProjectionError::MissingRow {
            position,
            what: "tier",
            id: text,
        }
    })
}

/// A user's membership row, if any order ever activated one.
pub async fn find<'c>(
    pool: impl sqlx::Executor<'c, Database = sqlx::Any>,
    tables: &Tables,
    user_id: &str,
) -> Result<Option<MembershipRow>, sqlx::Error> {
    let sql = format!(
        "SELECT user_id, tier, plan_id, status, starts_at, ends_at, last_position FROM {m} \
         WHERE user_id = $1",
        m = tables.membership
    );
    let Some(row) = sqlx::query(&sql).bind(user_id).fetch_optional(pool).await? else {
        return Ok(None);
    };
    Ok(Some(MembershipRow {
        user_id: row.try_get("user_id")?,
        tier: row.try_get("tier")?,
        plan_id: row.try_get("plan_id")?,
        status: row.try_get("status")?,
        starts_at: row.try_get("starts_at")?,
        ends_at: row.try_get("ends_at")?,
        last_position: row.try_get("last_position")?,
    }))
}

/// The orders that bought a user's membership, oldest first.
pub async fn orders<'c>(
    pool: impl sqlx::Executor<'c, Database = sqlx::Any>,
    tables: &Tables,
    user_id: &str,
) -> Result<Vec<MembershipOrderRow>, sqlx::Error> {
    let sql = format!(
        "SELECT order_id, plan_id, tier, period, starts_at, ends_at, revoked FROM {o} \
         WHERE user_id = $1 ORDER BY starts_at, order_id",
        o = tables.membership_orders
    );
    let rows = sqlx::query(&sql).bind(user_id).fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            Ok(MembershipOrderRow {
                order_id: row.try_get("order_id")?,
                plan_id: row.try_get("plan_id")?,
                tier: row.try_get("tier")?,
                period: row.try_get("period")?,
                starts_at: row.try_get("starts_at")?,
                ends_at: row.try_get("ends_at")?,
                revoked: row.try_get::<i64, _>("revoked")? != 0,
            })
        })
        .collect()
}
