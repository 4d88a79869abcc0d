//! Sending a command to one aggregate: load it, decide, append what it decided, all in one
//! transaction, and hand back what was committed, with positions.
//!
//! Three guarantees on top of that:
//! - Commands to one aggregate are serialised within the process, so a burst of webhooks or
//!   refunds for one order queues instead of failing on optimistic-concurrency conflicts.
//! - Conflicts that remain (another process appended first) are retried, with backoff and
//!   jitter, a bounded number of times before they reach the caller (see `retry`).
//! - A command runs to completion in its own task even if the caller goes away (a client that
//!   disconnects mid-request must not cancel an append halfway through a transaction).

use std::marker::PhantomData;

use cqrs_es::AggregateError;
use projections::log::StoredEvent;

use super::append::{self, AppendError};
use super::connect::Store;
use super::decide::Decide;
use super::load::{self, Refusal};
use super::metadata::EventMetadata;
use super::retry::retry_on_conflict;

/// What a command committed: its events with their log positions, oldest first. Empty when
/// the command changed nothing (a repeat the aggregate recognised).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Committed {
    pub events: Vec<StoredEvent>,
}

impl Committed {
    /// The position of the last event committed, if any.
    pub fn position(&self) -> Option<i64> {
        self.events.last().map(|event| event.position)
    }

    /// True when the command changed nothing.
    pub fn is_unchanged(&self) -> bool {
        self.events.is_empty()
    }
}

/// Commands for one aggregate type.
pub struct CommandBus<A> {
    store: Store,
    aggregate: PhantomData<fn() -> A>,
}

impl<A> Clone for CommandBus<A> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            aggregate: PhantomData,
        }
    }
}

impl<A> CommandBus<A>
where
    A: Decide + 'static,
    A::Command: Clone + Send + 'static,
    A::Error: Send + 'static,
{
    pub fn new(store: &Store) -> Self {
        Self {
            store: store.clone(),
            aggregate: PhantomData,
        }
    }

    /// Loads the aggregate, decides, and appends the resulting events with `metadata`.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed, AggregateError<A::Error>> {
        let store = self.store.clone();
        let aggregate_id = aggregate_id.to_owned();
        let metadata = metadata.clone();
        tokio::spawn(async move { execute::<A>(&store, &aggregate_id, command, &metadata).await })
            .await
            .map_err(|error| AggregateError::UnexpectedError(Box::new(error)))?
    }
}

async fn execute<A>(
    store: &Store,
    aggregate_id: &str,
    command: A::Command,
    metadata: &EventMetadata,
) -> Result<Committed, AggregateError<A::Error>>
where
    A: Decide,
    A::Command: Clone,
{
    let lock = store.locks.lock_for(A::TYPE, aggregate_id);
    let _turn = lock.lock().await;
    // The closure owns the command (cloned per attempt), so it need only be Send, not Sync.
    let attempted = retry_on_conflict(aggregate_id, move |attempt| {
        attempt_once::<A>(store, attempt, aggregate_id, command.clone(), metadata)
    })
    .await;
    match attempted {
        Ok(committed) => Ok(committed),
        Err(Attempt::Conflict) => Err(AggregateError::AggregateConflict),
        Err(Attempt::Refused(error)) => Err(AggregateError::UserError(error)),
        Err(Attempt::Failed(error)) => Err(AggregateError::DatabaseConnectionError(error.into())),
    }
}

/// Why one attempt did not commit.
pub(crate) enum Attempt<E> {
    Conflict,
    Refused(E),
    Failed(String),
}

impl<E> From<AppendError> for Attempt<E> {
    fn from(error: AppendError) -> Self {
        match error {
            AppendError::Conflict => Self::Conflict,
            other => Self::Failed(other.to_string()),
        }
    }
}

impl<E> From<sqlx::Error> for Attempt<E> {
    fn from(error: sqlx::Error) -> Self {
        AppendError::from(error).into()
    }
}

impl<E> From<load::LoadError> for Attempt<E> {
    fn from(error: load::LoadError) -> Self {
        Self::Failed(error.to_string())
    }
}

async fn attempt_once<A: Decide>(
    store: &Store,
    attempt: usize,
    aggregate_id: &str,
    command: A::Command,
    metadata: &EventMetadata,
) -> Result<Committed, Attempt<A::Error>> {
    let mut transaction = store.begin_decision(attempt).await?;
    let loaded = load::load::<A>(&mut transaction, aggregate_id).await?;
    let decision = match loaded.decide(aggregate_id, command) {
        Ok(decision) => decision,
        Err(Refusal::Domain(error)) => return Err(Attempt::Refused(error)),
        Err(Refusal::Encode(error)) => return Err(Attempt::Failed(error.to_string())),
    };
    if decision.append.events.is_empty() {
        // Nothing to write: the read-only transaction ends without a commit.
        transaction.rollback().await?;
        return Ok(Committed::default());
    }
    let appended = append::append(
        &mut transaction,
        store.dialect(),
        std::slice::from_ref(&decision.append),
        metadata,
    )
    .await?;
    let orders = Store::order_views(&mut transaction, &appended).await?;
    transaction.commit().await?;
    store.published(&appended, orders);
    Ok(Committed {
        events: appended.events,
    })
}
