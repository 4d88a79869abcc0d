//! Feeds the views from the log by global position, in batches. Each batch moves the
//! checkpoint and writes the view rows in one transaction, so a crash anywhere leaves either
//! the whole batch applied or none of it: no gaps, no doubles.
//!
//! The checkpoint update is a compare-and-set on the position the batch was read after, and
//! it is the batch's first statement. Several processes may run projectors on one database:
//! the loser of a race updates no row, rolls back and reads again. On SQLite the first write
//! also takes the write lock before anything is read, so a stale snapshot cannot bite.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;

use chrono::{DateTime, Utc};
use sqlx::{AnyPool, Connection, Row};

use crate::batch;
use crate::error::ProjectionError;
use crate::log::{self, StoredEvent};
use crate::schema::{Tables, VIEW_SCHEMA_VERSION};

/// The one projector that maintains every view.
pub const PROJECTOR_NAME: &str = "views";
/// Serialises view set-up across processes on PostgreSQL (the log's trigger uses ...001).
const SCHEMA_LOCK_KEY: i64 = 7_271_100_003;
/// Events applied per transaction when following the log. Writers wait on the checkpoint row
/// while a batch is applied, so it stays short: about a hundred milliseconds of work.
pub const BATCH_SIZE: i64 = 2_000;
/// Events applied per transaction when rebuilding a set no writer applies to.
pub const REBUILD_BATCH_SIZE: i64 = 5_000;

/// What one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// The views are at the head of the log (or at the requested bound).
    CaughtUp { checkpoint: i64 },
    /// Events were applied and the checkpoint moved here. `read` counts the events the batch
    /// took from the log, `count` those applied (an `as_of` rebuild skips later ones).
    Applied {
        count: usize,
        read: usize,
        checkpoint: i64,
    },
    /// Another process applied this batch first; read again.
    LostRace,
}

/// Maintains one set of view tables.
#[derive(Debug, Clone)]
pub struct Projector {
    pool: AnyPool,
    tables: Tables,
    batch_size: i64,
}

/// How far a run of batches got, for progress lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Events read from the log and accounted for by this run (applied or skipped).
    pub events: u64,
    /// The checkpoint after the last batch.
    pub checkpoint: i64,
    /// The position the run stops at, when bounded.
    pub up_to: Option<i64>,
}

impl Projector {
    pub fn new(pool: AnyPool, tables: Tables) -> Self {
        Self {
            pool,
            tables,
            batch_size: BATCH_SIZE,
        }
    }

    /// The same projector applying up to `batch_size` events per transaction.
    pub fn with_batch_size(mut self, batch_size: i64) -> Self {
        self.batch_size = batch_size.clamp(1, log::RANGE_READ_MAX);
        self
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Creates the tables if missing; drops and recreates them (to be rebuilt from the log)
    /// when they were built by a different view schema version.
    pub async fn prepare(&self) -> Result<(), ProjectionError> {
        self.set_up(false).await
    }

    /// Drops every table of the set and creates them empty, checkpoint at 0.
    pub async fn reset(&self) -> Result<(), ProjectionError> {
        self.set_up(true).await
    }

    /// Creates (or, when `fresh` or the schema version changed, recreates) the tables in one
    /// transaction. Several processes start at once: on PostgreSQL concurrent `CREATE TABLE IF
    /// NOT EXISTS` can still collide, so they take turns on an advisory lock.
    async fn set_up(&self, fresh: bool) -> Result<(), ProjectionError> {
        let mut connection = self.pool.acquire().await?;
        if connection.backend_name() != "PostgreSQL" {
            // SQLite has one writer at a time already. A deferred transaction here would read
            // before it writes and could fail on a snapshot another writer made stale.
            return self.set_up_on(&mut connection, fresh).await;
        }
        let mut transaction = connection.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK_KEY)
            .execute(&mut *transaction)
            .await?;
        self.set_up_on(&mut transaction, fresh).await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn set_up_on(
        &self,
        transaction: &mut sqlx::AnyConnection,
        fresh: bool,
    ) -> Result<(), ProjectionError> {
        if fresh {
            for statement in self.tables.drop_statements() {
                sqlx::query(&statement).execute(&mut *transaction).await?;
            }
        }
        let creation = if self.tables.is_scratch() && transaction.backend_name() == "PostgreSQL" {
            self.tables.create_unlogged_statements()
        } else {
            self.tables.create_statements()
        };
        for statement in &creation {
            sqlx::query(statement).execute(&mut *transaction).await?;
        }
        let sql = format!(
            "SELECT schema_version FROM {c} WHERE projector = $1",
            c = self.tables.checkpoints
        );
        let version: Option<i64> = sqlx::query(&sql)
            .bind(PROJECTOR_NAME)
            .fetch_optional(&mut *transaction)
            .await?
            .map(|row| row.try_get("schema_version"))
            .transpose()?;
        if version.is_some_and(|version| version != VIEW_SCHEMA_VERSION) {
            tracing::warn!(
                from = version,
                to = VIEW_SCHEMA_VERSION,
                "view schema changed; rebuilding the views from the log"
            );
            for statement in self.tables.drop_statements() {
                sqlx::query(&statement).execute(&mut *transaction).await?;
            }
            for statement in &creation {
                sqlx::query(statement).execute(&mut *transaction).await?;
            }
        }
        let sql = format!(
            "INSERT INTO {c} (projector, position, schema_version) VALUES ($1, 0, $2) \
             ON CONFLICT (projector) DO NOTHING",
            c = self.tables.checkpoints
        );
        sqlx::query(&sql)
            .bind(PROJECTOR_NAME)
            .bind(VIEW_SCHEMA_VERSION)
            .execute(&mut *transaction)
            .await?;
        Ok(())
    }

    /// The position up to which the views are exact.
    pub async fn checkpoint(&self) -> Result<i64, ProjectionError> {
        let sql = format!(
            "SELECT position FROM {c} WHERE projector = $1",
            c = self.tables.checkpoints
        );
        let row = sqlx::query(&sql)
            .bind(PROJECTOR_NAME)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|row| row.try_get("position"))
            .transpose()?
            .unwrap_or(0))
    }

    /// Applies the next batch, never past `up_to` when given. Events recorded after
    /// `as_of` are skipped (they still advance the checkpoint), for point-in-time rebuilds.
    pub async fn run_batch(
        &self,
        up_to: Option<i64>,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<BatchOutcome, ProjectionError> {
        let checkpoint = self.checkpoint().await?;
        if up_to.is_some_and(|bound| checkpoint >= bound) {
            return Ok(BatchOutcome::CaughtUp { checkpoint });
        }
        let events = log::read_range(&self.pool, checkpoint, up_to, self.batch_size).await?;
        self.apply_read(checkpoint, events, as_of).await
    }

    /// Applies `events`, read from the log after `checkpoint`, in one transaction that first
    /// moves the checkpoint from there to the last of them.
    async fn apply_read(
        &self,
        checkpoint: i64,
        mut events: Vec<StoredEvent>,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<BatchOutcome, ProjectionError> {
        let Some(last) = events.last().map(|event| event.position) else {
            return Ok(BatchOutcome::CaughtUp { checkpoint });
        };

        let mut transaction = self.pool.begin().await?;
        let sql = format!(
            "UPDATE {c} SET position = $1 WHERE projector = $2 AND position = $3",
            c = self.tables.checkpoints
        );
        let moved = sqlx::query(&sql)
            .bind(last)
            .bind(PROJECTOR_NAME)
            .bind(checkpoint)
            .execute(&mut *transaction)
            .await?;
        if moved.rows_affected() != 1 {
            transaction.rollback().await?;
            return Ok(BatchOutcome::LostRace);
        }
        let read = events.len();
        if let Some(as_of) = as_of {
            events.retain(|event| !recorded_after(event, as_of));
        }
        let count = events.len();
        batch::apply_batch(&mut transaction, &self.tables, &events).await?;
        transaction.commit().await?;
        Ok(BatchOutcome::Applied {
            count,
            read,
            checkpoint: last,
        })
    }

    /// Runs batches until the views reach the head of the log (or `up_to`).
    pub async fn catch_up(
        &self,
        up_to: Option<i64>,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<i64, ProjectionError> {
        self.catch_up_reporting(up_to, as_of, |_| {}).await
    }

    /// [`Self::catch_up`], telling `progress` after every batch this run applied.
    pub async fn catch_up_reporting(
        &self,
        up_to: Option<i64>,
        as_of: Option<DateTime<Utc>>,
        mut progress: impl FnMut(Progress),
    ) -> Result<i64, ProjectionError> {
        let mut events = 0_u64;
        // The page after the batch being applied, read meanwhile on another connection: the
        // database reads while this process decodes and writes. Two pages at most in memory.
        let mut next: Option<(i64, Vec<StoredEvent>)> = None;
        loop {
            let checkpoint = self.checkpoint().await?;
            if up_to.is_some_and(|bound| checkpoint >= bound) {
                return Ok(checkpoint);
            }
            let batch = match next.take() {
                Some((after, batch)) if after == checkpoint => batch,
                _ => log::read_range(&self.pool, checkpoint, up_to, self.batch_size).await?,
            };
            let Some(last) = batch.last().map(|event| event.position) else {
                return Ok(checkpoint);
            };
            let (outcome, following) = join(
                self.apply_read(checkpoint, batch, as_of),
                log::read_range(&self.pool, last, up_to, self.batch_size),
            )
            .await;
            next = Some((last, following?));
            match outcome? {
                BatchOutcome::CaughtUp { checkpoint } => return Ok(checkpoint),
                BatchOutcome::Applied {
                    read, checkpoint, ..
                } => {
                    events += u64::try_from(read).unwrap_or(u64::MAX);
                    progress(Progress {
                        events,
                        checkpoint,
                        up_to,
                    });
                }
                BatchOutcome::LostRace => {}
            }
        }
    }
}

/// Runs two futures concurrently and returns both outputs.
async fn join<A: Future, B: Future>(first: A, second: B) -> (A::Output, B::Output) {
    let mut first = pin!(first);
    let mut second = pin!(second);
    let mut first_output = None;
    let mut second_output = None;
    poll_fn(|context| {
        if first_output.is_none() {
            if let Poll::Ready(output) = first.as_mut().poll(context) {
                first_output = Some(output);
            }
        }
        if second_output.is_none() {
            if let Poll::Ready(output) = second.as_mut().poll(context) {
                second_output = Some(output);
            }
        }
        match (first_output.take(), second_output.take()) {
            (Some(first), Some(second)) => Poll::Ready((first, second)),
            (first, second) => {
                first_output = first;
                second_output = second;
                Poll::Pending
            }
        }
    })
    .await
}

/// True when the event was recorded after `as_of` (by the metadata stamp our writers add).
fn recorded_after(event: &StoredEvent, as_of: DateTime<Utc>) -> bool {
    event
        .metadata
        .get("recorded_at")
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .is_some_and(|recorded| recorded.with_timezone(&Utc) > as_of)
}
