//! Deliveries: one row per event and endpoint, enqueued by the outbox follower, claimed by a
//! sender under a lease (so two server processes never send one at the same time), and
//! finished as delivered, rescheduled, or failed once the retry window has closed. Every
//! attempt is kept with its response code for the admin API.

use serde::Serialize;
use sqlx::{AnyConnection, AnyPool, Row};
use utoipa::ToSchema;

use super::endpoints::{now_ms, Endpoint};
use super::events::{MerchantEvent, Subject};
use super::settings::RetrySchedule;
use super::MerchantError;
use crate::metrics::MerchantAttempt;

/// Most deliveries one admin listing returns.
pub const LIST_LIMIT_MAX: i64 = 200;
/// The longest error text kept per attempt.
const ERROR_TEXT_MAX: usize = 500;

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Enqueues `event` for every endpoint that wants it and was there before it happened.
/// Idempotent: an event already enqueued for an endpoint is left as it is.
pub async fn enqueue(
    connection: &mut AnyConnection,
    endpoints: &[Endpoint],
    event: &MerchantEvent,
    subject: &Subject,
    give_up_after: std::time::Duration,
) -> Result<usize, MerchantError> {
    let body = serde_json::to_string(event).map_err(|error| {
        MerchantError::Database(sqlx::Error::Protocol(format!("encoding an event: {error}")))
    })?;
    let now = now_ms();
    let mut enqueued = 0;
    for endpoint in endpoints
        .iter()
        .filter(|endpoint| endpoint.wants(event.event_type))
        .filter(|endpoint| event.position > endpoint.from_position)
    {
        enqueued += sqlx::query(
            "INSERT INTO merchant_webhook_deliveries (id, endpoint_id, event_id, event_type, \
             position, ordering_key, body, status, next_attempt_at, give_up_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $8) \
             ON CONFLICT (endpoint_id, event_id) DO NOTHING",
        )
        .bind(format!("whd_{}", uuid::Uuid::new_v4().simple()))
        .bind(endpoint.id.clone())
        .bind(event.id.clone())
        .bind(event.event_type)
        .bind(event.position)
        .bind(subject.ordering_key())
        .bind(body.clone())
        .bind(now)
        .bind(now.saturating_add(millis(give_up_after)))
        .execute(&mut *connection)
        .await?
        .rows_affected();
    }
    Ok(usize::try_from(enqueued).unwrap_or(usize::MAX))
}

/// A delivery a sender holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub body: String,
    pub attempts: i64,
    pub give_up_at: i64,
}

/// Takes up to `limit` due deliveries of one endpoint, each the oldest pending one of its
/// ordering key (so one order's events go out in position order), holding each for `lease`.
/// A delivery another sender holds is skipped: the lease is taken by a compare-and-set.
pub async fn claim(
    pool: &AnyPool,
    endpoint_id: &str,
    lease: std::time::Duration,
    limit: i64,
) -> Result<Vec<Claimed>, MerchantError> {
    let now = now_ms();
    let candidates = sqlx::query(
        "SELECT d.id AS id, d.body AS body, d.attempts AS attempts, d.give_up_at AS give_up_at \
         FROM merchant_webhook_deliveries d \
         WHERE d.endpoint_id = $1 AND d.status = 'pending' AND d.next_attempt_at <= $2 \
           AND d.leased_until <= $2 \
           AND NOT EXISTS (SELECT 1 FROM merchant_webhook_deliveries p \
               WHERE p.endpoint_id = d.endpoint_id AND p.ordering_key = d.ordering_key \
                 AND p.status = 'pending' AND p.position < d.position) \
         ORDER BY d.position LIMIT $3",
    )
    .bind(endpoint_id)
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut claimed = Vec::new();
    for row in candidates {
        let id: String = row.try_get("id")?;
        let taken = sqlx::query(
            "UPDATE merchant_webhook_deliveries SET leased_until = $2 \
             WHERE id = $1 AND status = 'pending' AND leased_until <= $3",
        )
        .bind(id.clone())
        .bind(now.saturating_add(millis(lease)))
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected();
        if taken == 1 {
            claimed.push(Claimed {
                id,
                body: row.try_get("body")?,
                attempts: row.try_get("attempts")?,
                give_up_at: row.try_get("give_up_at")?,
            });
        }
    }
    Ok(claimed)
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// The receiver's status code, when it answered in time.
    pub response_code: Option<u16>,
    /// Why it did not count, when it did not.
    pub error: Option<String>,
    pub duration_ms: i64,
}

impl AttemptOutcome {
    pub fn delivered(&self) -> bool {
        self.error.is_none()
            && self
                .response_code
                .is_some_and(|code| (200..300).contains(&code))
    }
}

/// Records an attempt and releases the lease: delivered, due again after the backoff, or
/// failed when the next attempt would fall after the retry window. Says which.
pub async fn record(
    pool: &AnyPool,
    claimed: &Claimed,
    outcome: &AttemptOutcome,
    schedule: &RetrySchedule,
) -> Result<MerchantAttempt, MerchantError> {
    let now = now_ms();
    let attempt = claimed.attempts.saturating_add(1);
    let code = outcome.response_code.map(i64::from);
    let error = outcome
        .error
        .as_ref()
        .map(|text| text.chars().take(ERROR_TEXT_MAX).collect::<String>());
    let mut transaction = pool.begin().await?;
    sqlx::query(
        "INSERT INTO merchant_webhook_attempts \
         (delivery_id, attempt, at, response_code, error, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (delivery_id, attempt) DO NOTHING",
    )
    .bind(claimed.id.clone())
    .bind(attempt)
    .bind(now)
    .bind(code)
    .bind(error.clone())
    .bind(outcome.duration_ms)
    .execute(&mut *transaction)
    .await?;
    let result = if outcome.delivered() {
        sqlx::query(
            "UPDATE merchant_webhook_deliveries SET status = 'delivered', attempts = $2, \
             delivered_at = $3, last_response_code = $4, last_error = NULL, leased_until = 0 \
             WHERE id = $1",
        )
        .bind(claimed.id.clone())
        .bind(attempt)
        .bind(now)
        .bind(code)
        .execute(&mut *transaction)
        .await?;
        MerchantAttempt::Delivered
    } else {
        let delay = schedule.delay_after(u32::try_from(attempt).unwrap_or(u32::MAX));
        let next = now.saturating_add(millis(delay));
        let status = if next > claimed.give_up_at {
            "failed"
        } else {
            "pending"
        };
        sqlx::query(
            "UPDATE merchant_webhook_deliveries SET status = $2, attempts = $3, \
             next_attempt_at = $4, last_response_code = $5, last_error = $6, leased_until = 0 \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(claimed.id.clone())
        .bind(status)
        .bind(attempt)
        .bind(next)
        .bind(code)
        .bind(error)
        .execute(&mut *transaction)
        .await?;
        if status == "failed" {
            MerchantAttempt::GaveUp
        } else {
            MerchantAttempt::Refused
        }
    };
    transaction.commit().await?;
    Ok(result)
}

/// One attempt as the admin API lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptRow {
    pub attempt: i64,
    /// Unix milliseconds.
    pub at: i64,
    #[schema(required = true)]
    pub response_code: Option<i64>,
    #[schema(required = true)]
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// One delivery as the admin API lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryRow {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub position: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    /// When the next attempt is due, unix milliseconds.
    #[schema(required = true)]
    pub next_attempt_at: Option<i64>,
    #[schema(required = true)]
    pub last_response_code: Option<i64>,
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// Unix milliseconds, as `delivered_at`.
    pub created_at: i64,
    #[schema(required = true)]
    pub delivered_at: Option<i64>,
    pub attempt_log: Vec<AttemptRow>,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<String>,
    pub event_id: Option<String>,
    pub endpoint_id: Option<String>,
    pub limit: i64,
}

/// Deliveries, newest first, with their attempts.
pub async fn list(pool: &AnyPool, filter: &ListFilter) -> Result<Vec<DeliveryRow>, MerchantError> {
    let rows = sqlx::query(
        "SELECT id, endpoint_id, event_id, event_type, position, status, attempts, \
         next_attempt_at, last_response_code, last_error, created_at, delivered_at \
         FROM merchant_webhook_deliveries \
         WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR event_id = $2) \
           AND ($3 IS NULL OR endpoint_id = $3) \
         ORDER BY position DESC, created_at DESC LIMIT $4",
    )
    .bind(filter.status.clone())
    .bind(filter.event_id.clone())
    .bind(filter.endpoint_id.clone())
    .bind(filter.limit.clamp(1, LIST_LIMIT_MAX))
    .fetch_all(pool)
    .await?;
    let mut deliveries = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("id")?;
        let status: String = row.try_get("status")?;
        let attempt_log = sqlx::query(
            "SELECT attempt, at, response_code, error, duration_ms \
             FROM merchant_webhook_attempts WHERE delivery_id = $1 ORDER BY attempt",
        )
        .bind(id.clone())
        .fetch_all(pool)
        .await?
        .iter()
        .map(|attempt| {
            Ok(AttemptRow {
                attempt: attempt.try_get("attempt")?,
                at: attempt.try_get("at")?,
                response_code: attempt.try_get("response_code")?,
                error: attempt.try_get("error")?,
                duration_ms: attempt.try_get("duration_ms")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        deliveries.push(DeliveryRow {
            next_attempt_at: if status == "pending" {
                Some(row.try_get("next_attempt_at")?)
            } else {
                None
            },
            id,
            endpoint_id: row.try_get("endpoint_id")?,
            event_id: row.try_get("event_id")?,
            event_type: row.try_get("event_type")?,
            position: row.try_get("position")?,
            status,
            attempts: row.try_get("attempts")?,
            last_response_code: row.try_get("last_response_code")?,
            last_error: row.try_get("last_error")?,
            created_at: row.try_get("created_at")?,
            delivered_at: row.try_get("delivered_at")?,
            attempt_log,
        });
    }
    Ok(deliveries)
}

/// Sends a delivery again now, whatever became of it, with a fresh retry window as long as
/// its first one.
pub async fn retry(pool: &AnyPool, id: &str) -> Result<(), MerchantError> {
    let now = now_ms();
    let changed = sqlx::query(
        "UPDATE merchant_webhook_deliveries SET status = 'pending', next_attempt_at = $2, \
         give_up_at = $2 + (give_up_at - created_at), leased_until = 0 WHERE id = $1 \
         AND endpoint_id IN (SELECT id FROM merchant_webhook_endpoints WHERE deleted_at IS NULL)",
    )
    .bind(id)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected();
    if changed == 1 {
        return Ok(());
    }
    let exists = sqlx::query("SELECT 1 AS one FROM merchant_webhook_deliveries WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .is_some();
    Err(if exists {
        MerchantError::EndpointDeleted
    } else {
        MerchantError::DeliveryNotFound
    })
}
