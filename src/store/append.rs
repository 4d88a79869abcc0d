//! Appending to the log: everything one fact changes, in the caller's transaction.
//!
//! A commit numbers its events from the log's head under the log lock (the trigger checks the
//! numbering), links each to the one before it in the hash chain (`projections::chain`),
//! writes snapshots that fell due, and applies every view to the new events in the same
//! transaction (with the batch fold the catch-up projector uses), so a fact and what it means
//! for the read side commit or vanish together. Views are applied only when they stood exactly
//! at the head before this commit (a compare-and-set on their checkpoint); when they are behind
//! (just rebuilt, or being caught up), the catch-up projector applies these events with the
//! rest. On PostgreSQL the commit also notifies `LOG_CHANNEL`, so other processes' followers
//! wake without polling.

use projections::chain;
use projections::log::{RawEvent, StoredEvent};
use projections::projector::PROJECTOR_NAME;
use projections::Tables;
use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::metadata::EventMetadata;

/// The PostgreSQL channel every commit notifies with its last position.
pub const LOG_CHANNEL: &str = "payledger_log";
/// The transaction-scoped advisory lock that orders appends (also taken by the trigger).
pub const LOG_LOCK_KEY: i64 = 7_271_100_001;

/// Which SQL the backend speaks where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// One event ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
}

/// New events of one stream, decided against the stream as it stood at `expected_sequence`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamAppend {
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    /// The stream's last sequence when the events were decided (0: a new stream).
    pub expected_sequence: i64,
    pub events: Vec<NewEvent>,
    /// The aggregate after these events, when a snapshot fell due.
    pub snapshot: Option<Value>,
}

impl StreamAppend {
    /// The sequence of the stream's last event after this append.
    pub fn last_sequence(&self) -> i64 {
        self.expected_sequence + i64::try_from(self.events.len()).unwrap_or(i64::MAX)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to one of the streams since it was loaded: load and decide again.
    #[error("a stream moved on since it was loaded")]
    Conflict,
    #[error("appending to the log failed: {0}")]
    Database(sqlx::Error),
    #[error(transparent)]
    Views(#[from] projections::ProjectionError),
    #[error(transparent)]
    Log(#[from] projections::LogError),
}

impl From<sqlx::Error> for AppendError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(database) if database.is_unique_violation() => Self::Conflict,
            _ => Self::Database(error),
        }
    }
}

/// What a commit wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Appended {
    /// The new events with their positions, in position order.
    pub events: Vec<StoredEvent>,
    /// False when the views were behind the log and left these events to the catch-up.
    pub views_applied: bool,
}

/// Appends `streams` with `metadata` through `connection`, which must be inside a write
/// transaction (on SQLite an immediate one). Returns the events as stored.
pub async fn append(
    connection: &mut AnyConnection,
    dialect: Dialect,
    streams: &[StreamAppend],
    metadata: &EventMetadata,
) -> Result<Appended, AppendError> {
    let count: usize = streams.iter().map(|stream| stream.events.len()).sum();
    if count == 0 {
        return Ok(Appended::default());
    }
    let metadata_value = serde_json::to_value(metadata.to_map()).unwrap_or(Value::Null);
    let metadata_text = metadata_value.to_string();

    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOG_LOCK_KEY)
            .execute(&mut *connection)
            .await?;
    }
    // The head's link is read with its position, under the same lock: the chain follows
    // position order. A head stored without a link (a log written before the chain, or rows
    // inserted by hand) is linked first, once.
    let (head, head_hash) = chain::head_in(&mut *connection).await?;
    let mut previous = match head_hash.as_deref().and_then(chain::as_hash) {
        Some(hash) => hash,
        None => chain::link_unlinked_tail(&mut *connection).await?.1,
    };

    let mut rows = Vec::with_capacity(count);
    let mut position = head;
    for stream in streams {
        for (offset, event) in stream.events.iter().enumerate() {
            position += 1;
            rows.push(RawEvent {
                position,
                aggregate_type: stream.aggregate_type.to_owned(),
                aggregate_id: stream.aggregate_id.clone(),
                sequence: stream.expected_sequence + i64::try_from(offset).unwrap_or(i64::MAX) + 1,
                event_type: event.event_type.clone(),
                event_version: event.event_version.clone(),
                payload: event.payload.clone(),
                metadata: metadata_value.clone(),
                recorded_at: String::new(),
            });
        }
    }
    let hashes: Vec<chain::Hash> = rows
        .iter()
        .map(|row| {
            previous = chain::link(&previous, row);
            previous
        })
        .collect();
    insert_rows(connection, dialect, &mut rows, &hashes, &metadata_text).await?;
    for stream in streams {
        if let Some(snapshot) = &stream.snapshot {
            save_snapshot(connection, dialect, stream, snapshot).await?;
        }
    }

    let events = rows
        .into_iter()
        .map(StoredEvent::decode)
        .collect::<Result<Vec<_>, _>>()?;
    let views_applied = apply_views(connection, head, position, &events).await?;
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(LOG_CHANNEL)
            .bind(position.to_string())
            .execute(&mut *connection)
            .await?;
    }
    Ok(Appended {
        events,
        views_applied,
    })
}

/// One multi-row insert; fills in each row's `recorded_at` as the database stamped it.
async fn insert_rows(
    connection: &mut AnyConnection,
    dialect: Dialect,
    rows: &mut [RawEvent],
    hashes: &[chain::Hash],
    metadata_text: &str,
) -> Result<(), AppendError> {
    let json = match dialect {
        Dialect::Postgres => |n: usize| format!("CAST(${n} AS jsonb)"),
        Dialect::Sqlite => |n: usize| format!("${n}"),
    };
    let mut values = Vec::with_capacity(rows.len());
    for index in 0..rows.len() {
        let base = index * 9;
        values.push(format!(
            "(${}, ${}, ${}, ${}, ${}, {}, {}, ${}, ${})",
            base + 1,
            base + 2,
            base + 3,
            base + 4,
            base + 5,
            json(base + 6),
            json(base + 7),
            base + 8,
            base + 9,
        ));
    }
    let sql = format!(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata, position, hash) VALUES {} RETURNING position, CAST(recorded_at AS TEXT) AS recorded_at",
        values.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for (row, hash) in rows.iter().zip(hashes) {
        query = query
            .bind(row.aggregate_type.clone())
            .bind(row.aggregate_id.clone())
            .bind(row.sequence)
            .bind(row.event_type.clone())
            .bind(row.event_version.clone())
            .bind(row.payload.to_string())
            .bind(metadata_text.to_owned())
            .bind(row.position)
            .bind(hash.to_vec());
    }
    let stamped = query.fetch_all(&mut *connection).await?;
    for stamp in stamped {
        let position: i64 = stamp.try_get("position")?;
        let recorded_at: String = stamp.try_get("recorded_at")?;
        if let Some(row) = rows.iter_mut().find(|row| row.position == position) {
            row.recorded_at = recorded_at;
        }
    }
    Ok(())
}

async fn save_snapshot(
    connection: &mut AnyConnection,
    dialect: Dialect,
    stream: &StreamAppend,
    snapshot: &Value,
) -> Result<(), AppendError> {
    let payload = match dialect {
        Dialect::Postgres => "CAST($5 AS jsonb)",
        Dialect::Sqlite => "$5",
    };
    let sql = format!(
        "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload) \
         VALUES ($1, $2, $3, $4, {payload}) ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE \
         SET last_sequence = excluded.last_sequence, current_snapshot = excluded.current_snapshot, \
         payload = excluded.payload"
    );
    let last = stream.last_sequence();
    sqlx::query(&sql)
        .bind(stream.aggregate_type)
        .bind(stream.aggregate_id.clone())
        .bind(last)
        .bind(last)
        .bind(snapshot.to_string())
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Applies the views to `events` when they stood at `head` (the log's head before them).
async fn apply_views(
    connection: &mut AnyConnection,
    head: i64,
    to: i64,
    events: &[StoredEvent],
) -> Result<bool, AppendError> {
    let tables = Tables::live();
    let sql = format!(
        "UPDATE {c} SET position = $1 WHERE projector = $2 AND position = $3",
        c = tables.checkpoints
    );
    let moved = sqlx::query(&sql)
        .bind(to)
        .bind(PROJECTOR_NAME)
        .bind(head)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    if moved != 1 {
        return Ok(false);
    }
    projections::batch::apply_batch(connection, &tables, events).await?;
    Ok(true)
}
