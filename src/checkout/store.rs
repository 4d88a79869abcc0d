//! Checkout sessions in the database (`checkout_sessions`, `checkout_session_orders`).
//!
//! A session is who may pay for what through one link, not a fact about money: the orders it
//! places are events in the log like any other, and the session only remembers which of them
//! its link may show. Times are RFC 3339 UTC text, as in the views.

use chrono::{DateTime, Utc};
use sqlx::{AnyPool, Row};

use super::secret;

/// A session as stored; the secret itself is not (only its digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub plan_id: Option<String>,
    pub channel: Option<String>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    pub fn is_open_at(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

const COLUMNS: &str = "id, user_id, plan_id, channel, success_url, cancel_url, expires_at";

pub async fn insert(pool: &AnyPool, session: &Session, secret: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO checkout_sessions (id, secret_hash, user_id, plan_id, channel, success_url, \
         cancel_url, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&session.id)
    .bind(secret::digest(secret))
    .bind(&session.user_id)
    .bind(&session.plan_id)
    .bind(&session.channel)
    .bind(&session.success_url)
    .bind(&session.cancel_url)
    .bind(projections::schema::timestamp(&Utc::now()))
    .bind(projections::schema::timestamp(&session.expires_at))
    .execute(pool)
    .await?;
    Ok(())
}

/// The session a link's secret opens, open or expired; `None` for anything else.
pub async fn find_by_secret(pool: &AnyPool, secret: &str) -> Result<Option<Session>, sqlx::Error> {
    if !secret::well_formed(secret) {
        return Ok(None);
    }
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM checkout_sessions WHERE secret_hash = $1"
    ))
    .bind(secret::digest(secret))
    .fetch_optional(pool)
    .await?;
    row.map(|row| decode(&row)).transpose()
}

fn decode(row: &sqlx::any::AnyRow) -> Result<Session, sqlx::Error> {
    let expires_at: String = row.try_get("expires_at")?;
    let expires_at = DateTime::parse_from_rfc3339(&expires_at)
        .map_err(|error| sqlx::Error::Decode(Box::new(error)))?
        .with_timezone(&Utc);
    Ok(Session {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        plan_id: row.try_get("plan_id")?,
        channel: row.try_get("channel")?,
        success_url: row.try_get("success_url")?,
        cancel_url: row.try_get("cancel_url")?,
        expires_at,
    })
}

/// Records that `order_id` was placed through the session, so its link may show it.
pub async fn attach_order(
    pool: &AnyPool,
    session_id: &str,
    order_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO checkout_session_orders (order_id, session_id, created_at) \
         VALUES ($1, $2, $3)",
    )
    .bind(order_id)
    .bind(session_id)
    .bind(projections::schema::timestamp(&Utc::now()))
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether the session placed `order_id`.
pub async fn owns_order(
    pool: &AnyPool,
    session_id: &str,
    order_id: &str,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT order_id FROM checkout_session_orders WHERE order_id = $1 AND session_id = $2",
    )
    .bind(order_id)
    .bind(session_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

/// Takes one of the session's `orders_max` order slots; false when they are all taken. One
/// conditional update, so concurrent requests cannot pass the bound together. A slot is
/// spent by the attempt, whether or not the gateway then issues a charge.
pub async fn take_order_slot(
    pool: &AnyPool,
    session_id: &str,
    orders_max: i64,
) -> Result<bool, sqlx::Error> {
    let taken = sqlx::query(
        "UPDATE checkout_sessions SET orders_placed = orders_placed + 1 \
         WHERE id = $1 AND orders_placed < $2",
    )
    .bind(session_id)
    .bind(orders_max)
    .execute(pool)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// The newest order the session placed.
pub async fn newest_order(pool: &AnyPool, session_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query(
        "SELECT order_id FROM checkout_session_orders WHERE session_id = $1 \
         ORDER BY created_at DESC, order_id DESC LIMIT 1",
    )
    .bind(session_id)
    .fetch_optional(pool)
    .await?
    .map(|row| row.try_get::<String, _>("order_id"))
    .transpose()
}
