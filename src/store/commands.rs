//! Sending commands to aggregates through cqrs-es, on whichever backend is open.

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, CqrsFramework};
use postgres_es::{PostgresCqrs, PostgresEventRepository};
use sqlite_es::{SqliteCqrs, SqliteEventRepository};

use super::connect::{Backend, Store};
use super::metadata::EventMetadata;

/// Two commands racing on one aggregate: the loser reloads and decides again, this many
/// times at most, before the conflict is reported to the caller.
pub const COMMAND_RETRIES_MAX: usize = 5;

/// The cqrs-es framework for one aggregate type.
///
/// No cqrs-es queries are registered: read models are fed from the log by global position
/// (see the projections crate), which survives a crash between commit and view update.
pub enum CommandBus<A: Aggregate<Services = ()>> {
    Postgres(PostgresCqrs<A>),
    Sqlite(SqliteCqrs<A>),
}

impl<A> CommandBus<A>
where
    A: Aggregate<Services = ()>,
    A::Command: Clone,
{
    pub fn new(store: &Store) -> Self {
        match &store.backend {
            Backend::Postgres(pool) => {
                let repository = PostgresEventRepository::new(pool.clone());
                let events = PersistedEventStore::new_event_store(repository)
                    .with_upcasters(projections::upcast::upcasters());
                Self::Postgres(CqrsFramework::new(events, vec![], ()))
            }
            Backend::Sqlite(pool) => {
                let repository = SqliteEventRepository::new(pool.clone());
                let events = PersistedEventStore::new_event_store(repository)
                    .with_upcasters(projections::upcast::upcasters());
                Self::Sqlite(CqrsFramework::new(events, vec![], ()))
            }
        }
    }

    /// Loads the aggregate, decides, and appends the resulting events with `metadata`.
    /// Optimistic-concurrency conflicts are retried up to [`COMMAND_RETRIES_MAX`] times.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<(), AggregateError<A::Error>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match self {
                Self::Postgres(cqrs) => {
                    cqrs.execute_with_metadata(aggregate_id, command.clone(), metadata.to_map())
                        .await
                }
                Self::Sqlite(cqrs) => {
                    cqrs.execute_with_metadata(aggregate_id, command.clone(), metadata.to_map())
                        .await
                }
            };
            match result {
                Err(AggregateError::AggregateConflict) if attempt < COMMAND_RETRIES_MAX => {
                    tracing::debug!(aggregate_id, attempt, "concurrent append; retrying");
                    tokio::task::yield_now().await;
                }
                other => return other,
            }
        }
    }
}
