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

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use cqrs_es::AggregateError;
use projections::log::StoredEvent;
use sqlx::AnyConnection;

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

/// What a [`Precondition`] check returns: `Some` stops the command with that value.
pub type PreconditionFuture<'c, T> =
    Pin<Box<dyn Future<Output = Result<Option<T>, sqlx::Error>> + Send + 'c>>;

/// A read that must hold for the command to run, made inside the command's own transaction
/// (so it costs no transaction of its own). Run again on every attempt after a conflict.
pub type Precondition<T> =
    Arc<dyn for<'c> Fn(&'c mut AnyConnection) -> PreconditionFuture<'c, T> + Send + Sync>;

/// What a command with a precondition did.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked<T> {
    /// The precondition held; the command ran and committed this.
    Committed(Committed),
    /// The precondition stopped the command before the aggregate was loaded; nothing was
    /// written.
    Stopped(T),
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
        let checked = tokio::spawn(async move {
            execute::<A, std::convert::Infallible>(&store, &aggregate_id, command, &metadata, None)
                .await
        })
        .await
        .map_err(|error| AggregateError::UnexpectedError(Box::new(error)))??;
        match checked {
            Checked::Committed(committed) => Ok(committed),
            Checked::Stopped(never) => match never {},
        }
    }

    /// Like [`execute`](Self::execute), but first runs `precondition` in the same
    /// transaction; when it returns a value, the command stops there and nothing is written.
    pub async fn execute_checked<T: Send + 'static>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        precondition: Precondition<T>,
    ) -> Result<Checked<T>, AggregateError<A::Error>> {
        let store = self.store.clone();
        let aggregate_id = aggregate_id.to_owned();
        let metadata = metadata.clone();
        tokio::spawn(async move {
            execute::<A, T>(
                &store,
                &aggregate_id,
                command,
                &metadata,
                Some(precondition),
            )
            .await
        })
        .await
        .map_err(|error| AggregateError::UnexpectedError(Box::new(error)))?
    }
}

async fn execute<A, T>(
    store: &Store,
    aggregate_id: &str,
    command: A::Command,
    metadata: &EventMetadata,
    precondition: Option<Precondition<T>>,
) -> Result<Checked<T>, AggregateError<A::Error>>
where
    A: Decide,
    A::Command: Clone,
{
    let lock = store.locks.lock_for(A::TYPE, aggregate_id);
    let _turn = lock.lock().await;
    // The closure owns the command (cloned per attempt), so it need only be Send, not Sync.
    let attempted = retry_on_conflict(aggregate_id, move |attempt| {
        attempt_once::<A, T>(
            store,
            attempt,
            aggregate_id,
            command.clone(),
            metadata,
            precondition.clone(),
        )
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

async fn attempt_once<A: Decide, T>(
    store: &Store,
    attempt: usize,
    aggregate_id: &str,
    command: A::Command,
    metadata: &EventMetadata,
    precondition: Option<Precondition<T>>,
) -> Result<Checked<T>, Attempt<A::Error>> {
    let mut transaction = store.begin_decision(attempt).await?;
    if let Some(precondition) = precondition {
        if let Some(stopped) = precondition(&mut transaction).await? {
            // Nothing was written: the transaction ends without a commit.
            transaction.rollback().await?;
            return Ok(Checked::Stopped(stopped));
        }
    }
    let loaded = load::load::<A>(&mut transaction, aggregate_id).await?;
    let decision = match loaded.decide(aggregate_id, command) {
        Ok(decision) => decision,
        Err(Refusal::Domain(error)) => return Err(Attempt::Refused(error)),
        Err(Refusal::Encode(error)) => return Err(Attempt::Failed(error.to_string())),
    };
    if decision.append.events.is_empty() {
        // Nothing to write: the read-only transaction ends without a commit.
        transaction.rollback().await?;
        return Ok(Checked::Committed(Committed::default()));
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
    Ok(Checked::Committed(Committed {
        events: appended.events,
    }))
}
