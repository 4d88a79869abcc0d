//! Where merchant events go: the endpoint configured in the environment (its secrets stay
//! there) and the ones added through the admin API (each with a generated secret, kept here
//! because every delivery is signed with it).

use serde::Serialize;
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

use super::events::EventType;
use super::settings::ConfiguredEndpoint;
use super::MerchantError;

/// The id of the endpoint configured in the environment.
pub const CONFIGURED_ENDPOINT_ID: &str = "we_configured";
/// Endpoints the admin API may add, so a mistake cannot multiply every delivery unboundedly.
pub const ENDPOINTS_MAX: i64 = 16;
/// The longest endpoint URL accepted.
pub const URL_LENGTH_MAX: usize = 2_048;

/// One endpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    /// The event types it wants; empty means all.
    pub event_types: Vec<String>,
    /// Events after this position are delivered to it.
    pub from_position: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    #[serde(skip)]
    pub secret: Option<String>,
}

impl Endpoint {
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|wanted| wanted == event_type)
    }

    pub fn is_configured(&self) -> bool {
        self.id == CONFIGURED_ENDPOINT_ID
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Endpoint, sqlx::Error> {
    let types: String = row.try_get("event_types")?;
    Ok(Endpoint {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        event_types: serde_json::from_str(&types).unwrap_or_default(),
        from_position: row.try_get("from_position")?,
        created_at: row.try_get("created_at")?,
        secret: row.try_get("secret")?,
    })
}

const COLUMNS: &str = "id, url, secret, event_types, from_position, created_at";

/// Endpoints that receive events, oldest first.
pub async fn active<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
) -> Result<Vec<Endpoint>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM merchant_webhook_endpoints WHERE deleted_at IS NULL \
         ORDER BY created_at, id"
    );
    sqlx::query(&sql)
        .fetch_all(executor)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Records the configured endpoint (new events from the log's head on), or retires it when
/// none is configured any more. Its URL follows the configuration; its secrets are never
/// stored.
pub async fn register_configured(
    pool: &AnyPool,
    configured: Option<&ConfiguredEndpoint>,
) -> Result<(), MerchantError> {
    let now = now_ms();
    match configured {
        Some(endpoint) => {
            let head = projections::log::head(pool).await?;
            sqlx::query(
                "INSERT INTO merchant_webhook_endpoints \
                 (id, url, secret, event_types, from_position, created_at) \
                 VALUES ($1, $2, NULL, '[]', $3, $4) \
                 ON CONFLICT (id) DO UPDATE SET url = excluded.url, deleted_at = NULL",
            )
            .bind(CONFIGURED_ENDPOINT_ID)
            .bind(endpoint.url.clone())
            .bind(head)
            .bind(now)
            .execute(pool)
            .await?;
        }
        None => {
            sqlx::query(
                "UPDATE merchant_webhook_endpoints SET deleted_at = $2 \
                 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(CONFIGURED_ENDPOINT_ID)
            .bind(now)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// A new endpoint from the admin API; returns it with its secret (shown once).
pub async fn create(
    pool: &AnyPool,
    url: &str,
    event_types: &[String],
) -> Result<(Endpoint, String), MerchantError> {
    let url = url.trim();
    if url.len() > URL_LENGTH_MAX
        || !(url.starts_with("http://") || url.starts_with("https://"))
        || url.contains(char::is_whitespace)
    {
        return Err(MerchantError::InvalidUrl);
    }
    let mut wanted = Vec::new();
    for event_type in event_types {
        let kind = EventType::parse(event_type)
            .ok_or_else(|| MerchantError::UnknownEventType(event_type.clone()))?;
        if !wanted.contains(&kind.as_str().to_owned()) {
            wanted.push(kind.as_str().to_owned());
        }
    }
    let count: i64 = sqlx::query(
        "SELECT CAST(count(*) AS BIGINT) AS n FROM merchant_webhook_endpoints \
         WHERE deleted_at IS NULL",
    )
    .fetch_one(pool)
    .await?
    .try_get("n")?;
    if count >= ENDPOINTS_MAX {
        return Err(MerchantError::TooManyEndpoints);
    }
    // Two random UUIDs: 244 random bits, as hex.
    let secret = format!(
        "whsec_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut endpoint = Endpoint {
        id: format!("we_{}", uuid::Uuid::new_v4().simple()),
        url: url.to_owned(),
        event_types: wanted,
        from_position: 0,
        created_at: now_ms(),
        secret: Some(secret.clone()),
    };
    // The log's head read by the insert itself, so no event falls between the two.
    endpoint.from_position = sqlx::query(
        "INSERT INTO merchant_webhook_endpoints \
         (id, url, secret, event_types, from_position, created_at) VALUES ($1, $2, $3, $4, \
         (SELECT CAST(coalesce(max(position), 0) AS BIGINT) FROM events), $5) \
         RETURNING from_position",
    )
    .bind(endpoint.id.clone())
    .bind(endpoint.url.clone())
    .bind(secret.clone())
    .bind(serde_json::to_string(&endpoint.event_types).unwrap_or_else(|_| "[]".to_owned()))
    .bind(endpoint.created_at)
    .fetch_one(pool)
    .await?
    .try_get("from_position")?;
    Ok((endpoint, secret))
}

/// Stops delivering to an endpoint added through the API. Its deliveries stay listed; the
/// ones still pending are marked failed, since nothing will send them.
pub async fn delete(pool: &AnyPool, id: &str) -> Result<(), MerchantError> {
    if id == CONFIGURED_ENDPOINT_ID {
        return Err(MerchantError::ConfiguredEndpoint);
    }
    let mut transaction = pool.begin().await?;
    let deleted = sqlx::query(
        "UPDATE merchant_webhook_endpoints SET deleted_at = $2 \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(now_ms())
    .execute(&mut *transaction)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(MerchantError::EndpointNotFound);
    }
    sqlx::query(
        "UPDATE merchant_webhook_deliveries SET status = 'failed', \
         last_error = 'the endpoint was deleted' WHERE endpoint_id = $1 AND status = 'pending'",
    )
    .bind(id)
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await?;
    Ok(())
}
