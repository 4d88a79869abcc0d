//! `Idempotency-Key`: a client retrying a request with the same key gets the first result;
//! the same key with a different request is refused. The claim is one insert on a primary
//! key, so two concurrent requests with one key cannot both create a resource.

use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

use super::LedgerError;

/// The longest key accepted.
pub const KEY_LEN_MAX: usize = 128;

/// A client's `Idempotency-Key`: 1 to 128 ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(text: &str) -> Result<Self, LedgerError> {
        if text.is_empty() || text.len() > KEY_LEN_MAX || !text.is_ascii() {
            return Err(LedgerError::MalformedIdempotencyKey);
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
/// A claim this old whose resource never appeared belongs to a request that died.
const CLAIM_ABANDONED_AFTER: chrono::Duration = chrono::Duration::seconds(60);

/// What the key says about this request.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// No key, or a new key now bound to the new resource: go ahead.
    Fresh,
    /// The key was used before for the same request: answer with this resource.
    Replay(String),
}

/// A stable digest of the fields that define a request.
pub fn hash(fields: &[&str]) -> String {
    let mut digest = Sha256::new();
    for field in fields {
        digest.update(field.len().to_le_bytes());
        digest.update(field.as_bytes());
    }
    digest
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Binds the request's key (if any) to `resource_id`, or finds what it was bound to.
pub async fn claim(
    pool: &AnyPool,
    key: Option<&IdempotencyKey>,
    user_id: &str,
    scope: &str,
    request_hash: &str,
    resource_id: &str,
) -> Result<Claim, LedgerError> {
    let Some(key) = key.map(IdempotencyKey::as_str) else {
        return Ok(Claim::Fresh);
    };
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (user_id, scope, key, request_hash, resource_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, scope, key) DO NOTHING",
    )
    .bind(user_id)
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .bind(resource_id)
    .bind(projections::schema::timestamp(&chrono::Utc::now()))
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Fresh);
    }
    let row = sqlx::query(
        "SELECT request_hash, resource_id, created_at FROM idempotency_keys \
         WHERE user_id = $1 AND scope = $2 AND key = $3",
    )
    .bind(user_id)
    .bind(scope)
    .bind(key)
    .fetch_one(pool)
    .await?;
    let stored_hash: String = row.try_get("request_hash")?;
    if stored_hash != request_hash {
        return Err(LedgerError::IdempotencyKeyReused);
    }
    let resource: String = row.try_get("resource_id")?;
    let claimed_at: String = row.try_get("created_at")?;
    if abandoned(pool, scope, &resource, &claimed_at).await? {
        // The request that claimed this key died before recording anything (a crash between
        // the claim and the first append): hand the key to this request instead.
        let rebound = sqlx::query(
            "UPDATE idempotency_keys SET resource_id = $4, created_at = $5 \
             WHERE user_id = $1 AND scope = $2 AND key = $3 AND resource_id = $6",
        )
        .bind(user_id)
        .bind(scope)
        .bind(key)
        .bind(resource_id)
        .bind(projections::schema::timestamp(&chrono::Utc::now()))
        .bind(&resource)
        .execute(pool)
        .await?;
        if rebound.rows_affected() == 1 {
            tracing::warn!(scope, "idempotency key of an abandoned request taken over");
            return Ok(Claim::Fresh);
        }
    }
    Ok(Claim::Replay(resource))
}

/// True when a claim is old enough that its request cannot still be running (every gateway
/// call times out well before) and the resource it was to create does not exist.
async fn abandoned(
    pool: &AnyPool,
    scope: &str,
    resource_id: &str,
    claimed_at: &str,
) -> Result<bool, LedgerError> {
    let cutoff = projections::schema::timestamp(&(chrono::Utc::now() - CLAIM_ABANDONED_AFTER));
    if claimed_at >= cutoff.as_str() {
        return Ok(false);
    }
    let tables = projections::Tables::live();
    let sql = match scope {
        "create_order" => format!(
            "SELECT 1 AS found FROM {t} WHERE order_id = $1",
            t = tables.order_status
        ),
        "create_refund" => format!(
            "SELECT 1 AS found FROM {t} WHERE refund_id = $1",
            t = tables.refund_status
        ),
        _ => return Ok(false),
    };
    let found = sqlx::query(&sql)
        .bind(resource_id)
        .fetch_optional(pool)
        .await?;
    Ok(found.is_none())
}

/// Frees the request's key after the request failed before creating anything, so a retry
/// with the same key is decided afresh rather than pointed at a resource that never existed.
pub async fn release(pool: &AnyPool, key: Option<&IdempotencyKey>, user_id: &str, scope: &str) {
    let Some(key) = key.map(IdempotencyKey::as_str) else {
        return;
    };
    let result =
        sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND scope = $2 AND key = $3")
            .bind(user_id)
            .bind(scope)
            .bind(key)
            .execute(pool)
            .await;
    if let Err(error) = result {
        tracing::warn!(%error, "could not release an idempotency key");
    }
}
