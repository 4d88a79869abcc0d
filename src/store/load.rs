//! Loading one aggregate inside the transaction that will append to it: its snapshot, if it
//! has one, and the events after it.

use cqrs_es::persist::SerializedEvent;
use cqrs_es::{Aggregate, DomainEvent};
use sqlx::{AnyConnection, Row};

use super::decide::Decide;

/// An aggregate as of the last event of its stream.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    /// The stream's last sequence (0 for a stream with no events yet).
    pub sequence: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading the aggregate failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{aggregate} {id}: stored data does not decode: {reason}")]
    Undecodable {
        aggregate: &'static str,
        id: String,
        reason: String,
    },
}

/// Reads `aggregate_id`'s snapshot and later events through `connection`.
pub async fn load<A: Decide>(
    connection: &mut AnyConnection,
    aggregate_id: &str,
) -> Result<Loaded<A>, LoadError> {
    let undecodable = |reason: String| LoadError::Undecodable {
        aggregate: A::TYPE,
        id: aggregate_id.to_owned(),
        reason,
    };
    let mut loaded = Loaded {
        state: A::default(),
        sequence: 0,
    };
    if A::SNAPSHOT_EVERY.is_some() {
        let snapshot = sqlx::query(
            "SELECT last_sequence, CAST(payload AS TEXT) AS payload FROM snapshots \
             WHERE aggregate_type = $1 AND aggregate_id = $2",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .fetch_optional(&mut *connection)
        .await?;
        if let Some(row) = snapshot {
            let payload: String = row.try_get("payload")?;
            // A snapshot taken by an earlier version of the aggregate may no longer fit its
            // shape: the events are the truth, so fold them all instead (the next snapshot
            // replaces it).
            match serde_json::from_str(&payload) {
                Ok(state) => {
                    loaded.state = state;
                    loaded.sequence = row.try_get("last_sequence")?;
                }
                Err(error) => tracing::info!(
                    aggregate = A::TYPE,
                    aggregate_id,
                    %error,
                    "snapshot of an earlier shape; loading from the events"
                ),
            }
        }
    }
    let rows = sqlx::query(
        "SELECT sequence, event_type, event_version, CAST(payload AS TEXT) AS payload \
         FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 \
         ORDER BY sequence",
    )
    .bind(A::TYPE)
    .bind(aggregate_id)
    .bind(loaded.sequence)
    .fetch_all(&mut *connection)
    .await?;
    for row in rows {
        let sequence: i64 = row.try_get("sequence")?;
        let payload: String = row.try_get("payload")?;
        let serialized = SerializedEvent {
            aggregate_id: aggregate_id.to_owned(),
            sequence: usize::try_from(sequence).map_err(|error| undecodable(error.to_string()))?,
            aggregate_type: A::TYPE.to_owned(),
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: serde_json::from_str(&payload)
                .map_err(|error| undecodable(error.to_string()))?,
            metadata: serde_json::Value::Null,
        };
        let current = projections::upcast::upcast(serialized, &projections::upcast::upcasters());
        let event: A::Event = serde_json::from_value(current.payload)
            .map_err(|error| undecodable(error.to_string()))?;
        debug_assert_eq!(sequence, loaded.sequence + 1, "a stream skipped a sequence");
        loaded.state.apply(event);
        loaded.sequence = sequence;
    }
    Ok(loaded)
}

impl<A: Decide> Loaded<A> {
    /// The new events `command` leads to, as a stream append, and the state after them.
    pub fn decide(
        &self,
        aggregate_id: &str,
        command: A::Command,
    ) -> Result<Decision<A>, Refusal<A::Error>> {
        let events = self.state.decide(command).map_err(Refusal::Domain)?;
        let mut after = self.state.clone();
        let mut append = super::append::StreamAppend {
            aggregate_type: A::TYPE,
            aggregate_id: aggregate_id.to_owned(),
            expected_sequence: self.sequence,
            events: Vec::with_capacity(events.len()),
            snapshot: None,
        };
        for event in &events {
            append.events.push(super::append::NewEvent {
                event_type: event.event_type(),
                event_version: event.event_version(),
                payload: serde_json::to_value(event).map_err(Refusal::Encode)?,
            });
            after.apply(event.clone());
        }
        if let Some(every) = A::SNAPSHOT_EVERY {
            let last = append.last_sequence();
            if last / every > self.sequence / every {
                append.snapshot = Some(serde_json::to_value(&after).map_err(Refusal::Encode)?);
            }
        }
        Ok(Decision {
            append,
            after,
            events,
        })
    }
}

/// What one command decided: the events, ready to append, and the aggregate after them.
#[derive(Debug, Clone)]
pub struct Decision<A: Aggregate> {
    pub append: super::append::StreamAppend,
    pub after: A,
    pub events: Vec<A::Event>,
}

/// Why a decision produced nothing to append.
#[derive(Debug)]
pub enum Refusal<E> {
    /// The aggregate's rules refused the command.
    Domain(E),
    /// An event or snapshot would not serialise (a bug: domain types are plain data).
    Encode(serde_json::Error),
}
