//! The membership view: per user, the current entitlement and the orders that bought it.

use aggregates::{SubscriptionEvent, Tier};
use sqlx::{AnyConnection, Row};

use crate::error::ProjectionError;
use crate::log::StoredEvent;
use crate::schema::{timestamp, Tables};
use crate::sql::{enum_text, execute, Bind};

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

/// Applies one subscription event (the stream id is the user id).
pub async fn apply(
    connection: &mut AnyConnection,
    tables: &Tables,
    stored: &StoredEvent,
    event: &SubscriptionEvent,
) -> Result<(), ProjectionError> {
    let user_id = stored.aggregate_id.as_str();
    let position = stored.position;
    let m = &tables.membership;
    match event {
        SubscriptionEvent::MembershipActivated {
            order_id,
            plan_id,
            tier,
            period,
            starts_at,
            ends_at,
            ..
        } => {
            let sql = format!(
                "INSERT INTO {m} (user_id, tier, plan_id, status, starts_at, ends_at, last_position) \
                 VALUES ($1, $2, $3, 'active', $4, $5, $6) \
                 ON CONFLICT (user_id) DO UPDATE SET tier = $2, plan_id = $3, status = 'active', \
                 starts_at = $4, ends_at = $5, last_position = $6"
            );
            execute(
                &mut *connection,
                &sql,
                vec![
                    Bind::Text(user_id.to_owned()),
                    Bind::Text(enum_text(tier)),
                    Bind::Text(plan_id.to_string()),
                    Bind::Text(timestamp(starts_at)),
                    Bind::Text(timestamp(ends_at)),
                    Bind::Int(position),
                ],
            )
            .await?;
            add_order(
                connection, tables, user_id, order_id, plan_id, tier, period, starts_at, ends_at,
            )
            .await
        }
        SubscriptionEvent::MembershipExtended {
            order_id,
            plan_id,
            tier,
            period,
            starts_at,
            ends_at,
        } => {
            // The entitlement keeps the higher tier, as the aggregate does.
            let current = current_tier(&mut *connection, tables, user_id, position).await?;
            let kept = if *tier > current { *tier } else { current };
            let sql = format!(
                "UPDATE {m} SET tier = $2, plan_id = $3, status = 'active', ends_at = $4, \
                 last_position = $5 WHERE user_id = $1"
            );
            execute(
                &mut *connection,
                &sql,
                vec![
                    Bind::Text(user_id.to_owned()),
                    Bind::Text(enum_text(&kept)),
                    Bind::Text(plan_id.to_string()),
                    Bind::Text(timestamp(ends_at)),
                    Bind::Int(position),
                ],
            )
            .await?;
            add_order(
                connection, tables, user_id, order_id, plan_id, tier, period, starts_at, ends_at,
            )
            .await
        }
        SubscriptionEvent::MembershipRevoked {
            order_id,
            ends_at,
            revoked_at,
            ..
        } => {
            let sql = format!(
                "UPDATE {o} SET revoked = 1 WHERE user_id = $1 AND order_id = $2",
                o = tables.membership_orders
            );
            execute(
                &mut *connection,
                &sql,
                vec![
                    Bind::Text(user_id.to_owned()),
                    Bind::Text(order_id.to_string()),
                ],
            )
            .await?;
            // As the aggregate does: the tier falls back to the highest grant still paid for
            // in the current run, and a membership whose end moved into the past is over.
            let tier = run_tier(&mut *connection, tables, user_id, position).await?;
            let status = if ends_at <= revoked_at {
                "expired"
            } else {
                "active"
            };
            let sql = format!(
                "UPDATE {m} SET ends_at = $2, status = $3,                  tier = coalesce($4, tier), last_position = $5 WHERE user_id = $1"
            );
            execute(
                connection,
                &sql,
                vec![
                    Bind::Text(user_id.to_owned()),
                    Bind::Text(timestamp(ends_at)),
                    Bind::Text(status.to_owned()),
                    Bind::OptText(tier.map(|tier| enum_text(&tier))),
                    Bind::Int(position),
                ],
            )
            .await
        }
        SubscriptionEvent::MembershipExpired { .. } => {
            let sql =
                format!("UPDATE {m} SET status = 'expired', last_position = $2 WHERE user_id = $1");
            execute(
                connection,
                &sql,
                vec![Bind::Text(user_id.to_owned()), Bind::Int(position)],
            )
            .await
        }
    }
}

/// The highest tier among the unrevoked grants of the current run (those starting at or
/// after the run's start, which only an activation sets).
async fn run_tier(
    connection: &mut AnyConnection,
    tables: &Tables,
    user_id: &str,
    position: i64,
) -> Result<Option<Tier>, ProjectionError> {
    let sql = format!(
        "SELECT o.tier AS tier FROM {o} o JOIN {m} m ON m.user_id = o.user_id \
         WHERE o.user_id = $1 AND o.revoked = 0 AND o.starts_at >= m.starts_at",
        o = tables.membership_orders,
        m = tables.membership
    );
    let mut best: Option<Tier> = None;
    for row in sqlx::query(&sql)
        .bind(user_id)
        .fetch_all(connection)
        .await?
    {
        let text: String = row.try_get("tier")?;
        let tier = parse_tier(text, position)?;
        best = Some(best.map_or(tier, |current| current.max(tier)));
    }
    Ok(best)
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

async fn current_tier(
    connection: &mut AnyConnection,
    tables: &Tables,
    user_id: &str,
    position: i64,
) -> Result<Tier, ProjectionError> {
    let sql = format!(
        "SELECT tier FROM {m} WHERE user_id = $1",
        m = tables.membership
    );
    let row = sqlx::query(&sql)
        .bind(user_id)
        .fetch_optional(connection)
        .await?
        .ok_or_else(|| ProjectionError::MissingRow {
            position,
            what: "membership",
            id: user_id.to_owned(),
        })?;
    parse_tier(row.try_get("tier")?, position)
}

#[allow(clippy::too_many_arguments)]
async fn add_order(
    connection: &mut AnyConnection,
    tables: &Tables,
    user_id: &str,
    order_id: &aggregates::OrderId,
    plan_id: &aggregates::PlanId,
    tier: &Tier,
    period: &aggregates::Period,
    starts_at: &chrono::DateTime<chrono::Utc>,
    ends_at: &chrono::DateTime<chrono::Utc>,
) -> Result<(), ProjectionError> {
    let sql = format!(
        "INSERT INTO {o} (user_id, order_id, plan_id, tier, period, starts_at, ends_at, revoked) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0) ON CONFLICT (user_id, order_id) DO NOTHING",
        o = tables.membership_orders
    );
    execute(
        connection,
        &sql,
        vec![
            Bind::Text(user_id.to_owned()),
            Bind::Text(order_id.to_string()),
            Bind::Text(plan_id.to_string()),
            Bind::Text(enum_text(tier)),
            Bind::Text(enum_text(period)),
            Bind::Text(timestamp(starts_at)),
            Bind::Text(timestamp(ends_at)),
        ],
    )
    .await
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
