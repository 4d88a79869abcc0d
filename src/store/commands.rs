//! Sending commands to aggregates through cqrs-es, on whichever backend is open.
//!
//! Three guarantees on top of cqrs-es:
//! - Commands to one aggregate are serialised within the process, so a burst of webhooks or
//!   refunds for one order queues instead of failing on optimistic-concurrency conflicts.
//! - Conflicts that remain (another process appended first) are retried, with backoff and
//!   jitter, a bounded number of times before they reach the caller.
//! - A command runs to completion in its own task even if the caller goes away (a client that
//!   disconnects mid-request must not cancel an append halfway through a transaction).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, CqrsFramework};
use postgres_es::{PostgresCqrs, PostgresEventRepository};
use sqlite_es::{SqliteCqrs, SqliteEventRepository};

use super::connect::{Backend, Store};
use super::metadata::EventMetadata;

/// Attempts per command when other processes keep appending to the same aggregate.
pub const COMMAND_RETRIES_MAX: usize = 10;
/// First pause after a conflict; doubled per attempt up to the cap, plus jitter.
const RETRY_BACKOFF_INITIAL: Duration = Duration::from_millis(1);
const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(50);
/// Take a snapshot of an aggregate every this many events, so loading one costs at most a
/// snapshot plus this many events however long its history grows.
pub const SNAPSHOT_EVERY: usize = 50;
/// Above this many remembered aggregates, forget those no command is using.
const LOCKS_TIDY_THRESHOLD: usize = 10_000;

enum Framework<A: Aggregate<Services = ()>> {
    Postgres(PostgresCqrs<A>),
    Sqlite(SqliteCqrs<A>),
}

struct Inner<A: Aggregate<Services = ()>> {
    framework: Framework<A>,
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

/// The cqrs-es framework for one aggregate type.
///
/// No cqrs-es queries are registered: read models are fed from the log by global position
/// (see the projections crate), which survives a crash between commit and view update.
pub struct CommandBus<A: Aggregate<Services = ()>> {
    inner: Arc<Inner<A>>,
}

impl<A: Aggregate<Services = ()>> Clone for CommandBus<A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<A> CommandBus<A>
where
    A: Aggregate<Services = ()> + 'static,
    A::Command: Clone + Send + 'static,
    A::Error: Send + 'static,
{
    pub fn new(store: &Store) -> Self {
        let framework = match &store.backend {
            Backend::Postgres(pool) => {
                let repository = PostgresEventRepository::new(pool.clone());
                let events = PersistedEventStore::new_snapshot_store(repository, SNAPSHOT_EVERY)
                    .with_upcasters(projections::upcast::upcasters());
                Framework::Postgres(CqrsFramework::new(events, vec![], ()))
            }
            Backend::Sqlite(pool) => {
                let repository = SqliteEventRepository::new(pool.clone());
                let events = PersistedEventStore::new_snapshot_store(repository, SNAPSHOT_EVERY)
                    .with_upcasters(projections::upcast::upcasters());
                Framework::Sqlite(CqrsFramework::new(events, vec![], ()))
            }
        };
        Self {
            inner: Arc::new(Inner {
                framework,
                locks: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Loads the aggregate, decides, and appends the resulting events with `metadata`.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<(), AggregateError<A::Error>> {
        let inner = self.inner.clone();
        let aggregate_id = aggregate_id.to_owned();
        let metadata = metadata.clone();
        tokio::spawn(async move { inner.execute(&aggregate_id, command, &metadata).await })
            .await
            .map_err(|error| AggregateError::UnexpectedError(Box::new(error)))?
    }
}

impl<A> Inner<A>
where
    A: Aggregate<Services = ()>,
    A::Command: Clone,
{
    async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<(), AggregateError<A::Error>> {
        let lock = self.lock_for(aggregate_id);
        let _turn = lock.lock().await;
        let mut backoff = RETRY_BACKOFF_INITIAL;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match &self.framework {
                Framework::Postgres(cqrs) => {
                    cqrs.execute_with_metadata(aggregate_id, command.clone(), metadata.to_map())
                        .await
                }
                Framework::Sqlite(cqrs) => {
                    cqrs.execute_with_metadata(aggregate_id, command.clone(), metadata.to_map())
                        .await
                }
            };
            match result {
                Err(AggregateError::AggregateConflict) if attempt < COMMAND_RETRIES_MAX => {
                    tracing::debug!(aggregate_id, attempt, "concurrent append; retrying");
                    tokio::time::sleep(backoff + jitter(backoff)).await;
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                }
                other => return other,
            }
        }
    }

    /// The in-process lock of one aggregate, shared by every command currently using it.
    fn lock_for(&self, aggregate_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = match self.locks.lock() {
            Ok(locks) => locks,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(lock) = locks.get(aggregate_id).and_then(Weak::upgrade) {
            return lock;
        }
        if locks.len() > LOCKS_TIDY_THRESHOLD {
            locks.retain(|_, lock| lock.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(aggregate_id.to_owned(), Arc::downgrade(&lock));
        lock
    }
}

/// Up to `scale` of random extra wait, so processes that conflicted do not retry in step.
fn jitter(scale: Duration) -> Duration {
    let micros = u64::try_from(scale.as_micros()).unwrap_or(u64::MAX).max(1);
    let random = uuid::Uuid::new_v4().as_u64_pair().0;
    Duration::from_micros(random % micros)
}
