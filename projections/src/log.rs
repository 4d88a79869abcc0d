//! Reading the event log in global-position order, for projectors and audits.

use std::collections::HashMap;

use aggregates::{Order, OrderEvent, Subscription, SubscriptionEvent};
use cqrs_es::persist::SerializedEvent;
use cqrs_es::Aggregate;
use serde::Deserialize;
use sqlx::{AnyPool, Row};

use crate::upcast;

/// Most events read from the log in one query.
pub const READ_BATCH_MAX: i64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("reading the event log failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error(
        "event at position {position} ({event_type} v{event_version}) does not decode: {reason}"
    )]
    Undecodable {
        position: i64,
        event_type: String,
        event_version: String,
        reason: String,
    },
}

/// A domain event as it came out of the log, decoded and upcast.
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerEvent {
    Order(OrderEvent),
    Subscription(SubscriptionEvent),
    /// An aggregate type this build does not know; kept so positions stay contiguous.
    Other,
}

/// One row of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
    pub metadata: HashMap<String, String>,
    /// When the database recorded the row, as the database prints it.
    pub recorded_at: String,
    pub event: LedgerEvent,
}

const SELECT_COLUMNS: &str =
    "SELECT position, aggregate_type, aggregate_id, sequence, event_type, \
     event_version, CAST(payload AS TEXT) AS payload, CAST(metadata AS TEXT) AS metadata, \
     CAST(recorded_at AS TEXT) AS recorded_at FROM events";

/// Events with a position greater than `after`, oldest first, at most `limit`.
pub async fn read_after(
    pool: &AnyPool,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, LogError> {
    let sql = format!("{SELECT_COLUMNS} WHERE position > $1 ORDER BY position LIMIT $2");
    let rows = sqlx::query(&sql)
        .bind(after)
        .bind(limit.clamp(1, READ_BATCH_MAX))
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode_row).collect()
}

/// Most events a rebuild reads in one query.
pub const RANGE_READ_MAX: i64 = 10_000;

/// Events with a position greater than `after` and at most `up_to` (when given), oldest
/// first, at most `limit`: one page of a keyset walk over the log, so a reader of the whole
/// log holds one page at a time.
pub async fn read_range(
    pool: &AnyPool,
    after: i64,
    up_to: Option<i64>,
    limit: i64,
) -> Result<Vec<StoredEvent>, LogError> {
    let sql = format!(
        "{SELECT_COLUMNS} WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(after)
        .bind(up_to.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, RANGE_READ_MAX))
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode_row).collect()
}

/// One aggregate's events in stream order.
pub async fn read_stream(
    pool: &AnyPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<StoredEvent>, LogError> {
    let mut connection = pool.acquire().await?;
    read_stream_in(&mut connection, aggregate_type, aggregate_id).await
}

/// One aggregate's events in stream order, read through `connection` (e.g. a writer's
/// transaction).
pub async fn read_stream_in(
    connection: &mut sqlx::AnyConnection,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<StoredEvent>, LogError> {
    let sql = format!(
        "{SELECT_COLUMNS} WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
    );
    let rows = sqlx::query(&sql)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_all(connection)
        .await?;
    rows.iter().map(decode_row).collect()
}

/// The highest position in the log (0 when empty).
pub async fn head(pool: &AnyPool) -> Result<i64, LogError> {
    let row = sqlx::query("SELECT CAST(coalesce(max(position), 0) AS BIGINT) AS head FROM events")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get::<i64, _>("head")?)
}

/// The highest position of one aggregate's stream (0 when it has none).
pub async fn stream_head(
    pool: &AnyPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<i64, LogError> {
    let row = sqlx::query(
        "SELECT CAST(coalesce(max(position), 0) AS BIGINT) AS head FROM events \
         WHERE aggregate_type = $1 AND aggregate_id = $2",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_one(pool)
    .await?;
    Ok(row.try_get::<i64, _>("head")?)
}

fn decode_row(row: &sqlx::any::AnyRow) -> Result<StoredEvent, LogError> {
    let position: i64 = row.try_get("position")?;
    let event_type: String = row.try_get("event_type")?;
    let event_version: String = row.try_get("event_version")?;
    let payload_text: String = row.try_get("payload")?;
    let metadata_text: String = row.try_get("metadata")?;
    let undecodable = |reason: String| LogError::Undecodable {
        position,
        event_type: event_type.clone(),
        event_version: event_version.clone(),
        reason,
    };
    let payload: serde_json::Value =
        serde_json::from_str(&payload_text).map_err(|error| undecodable(error.to_string()))?;
    let metadata: serde_json::Value =
        serde_json::from_str(&metadata_text).map_err(|error| undecodable(error.to_string()))?;
    StoredEvent::decode(RawEvent {
        position,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type,
        event_version,
        payload,
        metadata,
        recorded_at: row.try_get("recorded_at")?,
    })
}

/// One row of the log before decoding: what a writer inserted, or a reader selected.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: String,
}

impl StoredEvent {
    /// Upcasts and decodes one row of the log.
    pub fn decode(raw: RawEvent) -> Result<Self, LogError> {
        let RawEvent {
            position,
            aggregate_type,
            aggregate_id,
            sequence,
            event_type,
            event_version,
            payload,
            metadata: metadata_value,
            recorded_at,
        } = raw;
        let undecodable = |reason: String| LogError::Undecodable {
            position,
            event_type: event_type.clone(),
            event_version: event_version.clone(),
            reason,
        };
        // Deserialised from the borrowed JSON: a replay decodes every event, copies add up.
        let metadata = HashMap::<String, String>::deserialize(&metadata_value)
            .map_err(|error| undecodable(error.to_string()))?;
        let serialized = SerializedEvent {
            aggregate_id: aggregate_id.clone(),
            sequence: usize::try_from(sequence).map_err(|error| undecodable(error.to_string()))?,
            aggregate_type: aggregate_type.clone(),
            event_type: event_type.clone(),
            event_version: event_version.clone(),
            payload,
            metadata: metadata_value,
        };
        let current = upcast::upcast(serialized, &upcast::upcasters());
        let event = if aggregate_type == Order::TYPE {
            LedgerEvent::Order(
                OrderEvent::deserialize(&current.payload)
                    .map_err(|error| undecodable(error.to_string()))?,
            )
        } else if aggregate_type == Subscription::TYPE {
            LedgerEvent::Subscription(
                SubscriptionEvent::deserialize(&current.payload)
                    .map_err(|error| undecodable(error.to_string()))?,
            )
        } else {
            LedgerEvent::Other
        };
        Ok(StoredEvent {
            position,
            aggregate_type,
            aggregate_id,
            sequence,
            event_type: current.event_type,
            event_version: current.event_version,
            payload: current.payload,
            metadata,
            recorded_at,
            event,
        })
    }
}
