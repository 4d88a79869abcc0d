//! Audit replays: rebuild every view from the log into scratch tables and compare them with
//! the live views, or rebuild the state as it stood at an instant.

use chrono::{DateTime, Utc};
use sqlx::{AnyPool, Row};

use crate::error::ProjectionError;
use crate::projector::{Progress, Projector, REBUILD_BATCH_SIZE};
use crate::schema::Tables;

/// A row present on one side of the comparison only (a changed row shows on both sides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub view: String,
    pub key: String,
    pub side: Side,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    OnlyLive,
    OnlyReplayed,
}

/// The outcome of an audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// The log position both sides were compared at (the live views' checkpoint).
    pub position: i64,
    /// Rows compared per view, in the replayed set.
    pub rows: Vec<(String, i64)>,
    /// The first differences of each view and side (at most [`DIFFERENCES_LISTED_MAX`]).
    pub differences: Vec<Difference>,
    /// Every difference, listed or not.
    pub differences_total: i64,
}

/// Differences listed per view and side: the report stays small however wrong the views are.
pub const DIFFERENCES_LISTED_MAX: usize = 100;

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Working memory of the comparison's transaction on PostgreSQL (the server's default is a
/// few megabytes, which sends `EXCEPT` over views of many orders to sorts on disk).
const COMPARE_WORK_MEM: &str = "SET LOCAL work_mem = '256MB'";

/// How many times the audit chases a live projector that keeps moving before giving up.
const AUDIT_ATTEMPTS_MAX: usize = 20;

/// Rebuilds every view from the log up to the live checkpoint and compares row by row.
///
/// The live projector may be running: the comparison happens inside one read snapshot in
/// which the live checkpoint equals the position the scratch set was rebuilt to.
pub async fn audit(pool: &AnyPool) -> Result<AuditReport, ProjectionError> {
    audit_reporting(pool, |_| {}).await
}

/// [`audit`], telling `progress` after every rebuilt batch (`events` counts from the start of
/// the audit, across the attempts).
pub async fn audit_reporting(
    pool: &AnyPool,
    mut progress: impl FnMut(Progress),
) -> Result<AuditReport, ProjectionError> {
    let live = Projector::new(pool.clone(), Tables::live());
    live.prepare().await?;
    let scratch =
        Projector::new(pool.clone(), Tables::replay()).with_batch_size(REBUILD_BATCH_SIZE);
    scratch.reset().await?;
    let mut report = None;
    let mut earlier = 0;
    for _ in 0..AUDIT_ATTEMPTS_MAX {
        let position = live.checkpoint().await?;
        let mut done = 0;
        scratch
            .catch_up_reporting(Some(position), None, |mut step| {
                done = step.events;
                step.events += earlier;
                progress(step);
            })
            .await?;
        earlier += done;
        let mut snapshot = pool.begin().await?;
        if snapshot.backend_name() == "PostgreSQL" {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *snapshot)
                .await?;
            // Enough memory for the comparison's set operations to hash the views instead of
            // sorting them on disk; for this read-only transaction only.
            sqlx::query(COMPARE_WORK_MEM)
                .execute(&mut *snapshot)
                .await?;
        }
        let sql = format!(
            "SELECT position FROM {c} WHERE projector = $1",
            c = live.tables().checkpoints
        );
        let seen: i64 = sqlx::query(&sql)
            .bind(crate::projector::PROJECTOR_NAME)
            .fetch_one(&mut *snapshot)
            .await?
            .try_get("position")?;
        if seen != position {
            snapshot.rollback().await?;
            continue;
        }
        report = Some(compare(&mut snapshot, &live, &scratch, position).await?);
        snapshot.rollback().await?;
        break;
    }
    for statement in scratch.tables().drop_statements() {
        sqlx::query(&statement).execute(pool).await?;
    }
    report.ok_or(ProjectionError::MovingTarget {
        attempts: AUDIT_ATTEMPTS_MAX,
    })
}

async fn compare(
    connection: &mut sqlx::AnyConnection,
    live: &Projector,
    scratch: &Projector,
    position: i64,
) -> Result<AuditReport, ProjectionError> {
    let mut differences = Vec::new();
    let mut differences_total = 0;
    let mut rows = Vec::new();
    for ((live_table, key), (replay_table, _)) in live
        .tables()
        .views()
        .into_iter()
        .zip(scratch.tables().views())
    {
        let count_sql = format!("SELECT CAST(count(*) AS BIGINT) AS n FROM {replay_table}");
        let count: i64 = sqlx::query(&count_sql)
            .fetch_one(&mut *connection)
            .await?
            .try_get("n")?;
        rows.push((live_table.to_owned(), count));
        for (from, to, side) in [
            (live_table, replay_table, Side::OnlyLive),
            (replay_table, live_table, Side::OnlyReplayed),
        ] {
            // The database compares the sets; only a bounded list of keys comes back.
            let except = format!("SELECT * FROM {from} EXCEPT SELECT * FROM {to}");
            let sql = format!("SELECT {key} FROM ({except}) AS d ORDER BY {key} LIMIT $1");
            let listed = sqlx::query(&sql)
                .bind(i64::try_from(DIFFERENCES_LISTED_MAX + 1).unwrap_or(i64::MAX))
                .fetch_all(&mut *connection)
                .await?;
            differences_total += if listed.len() > DIFFERENCES_LISTED_MAX {
                let sql = format!("SELECT CAST(count(*) AS BIGINT) AS n FROM ({except}) AS d");
                sqlx::query(&sql)
                    .fetch_one(&mut *connection)
                    .await?
                    .try_get::<i64, _>("n")?
            } else {
                i64::try_from(listed.len()).unwrap_or(i64::MAX)
            };
            for row in listed.iter().take(DIFFERENCES_LISTED_MAX) {
                let mut parts = Vec::new();
                for index in 0..row.len() {
                    parts.push(row.try_get::<String, _>(index)?);
                }
                differences.push(Difference {
                    view: live_table.to_owned(),
                    key: parts.join("/"),
                    side,
                });
            }
        }
    }
    Ok(AuditReport {
        position,
        rows,
        differences,
        differences_total,
    })
}

/// Rebuilds the views as they stood at `as_of` into the scratch tables and leaves them there
/// for inspection; returns the projector over them.
pub async fn rebuild_as_of(
    pool: &AnyPool,
    as_of: DateTime<Utc>,
) -> Result<Projector, ProjectionError> {
    rebuild_as_of_reporting(pool, as_of, |_| {}).await
}

/// [`rebuild_as_of`], telling `progress` after every batch.
pub async fn rebuild_as_of_reporting(
    pool: &AnyPool,
    as_of: DateTime<Utc>,
    progress: impl FnMut(Progress),
) -> Result<Projector, ProjectionError> {
    let scratch =
        Projector::new(pool.clone(), Tables::replay()).with_batch_size(REBUILD_BATCH_SIZE);
    scratch.reset().await?;
    scratch
        .catch_up_reporting(None, Some(as_of), progress)
        .await?;
    Ok(scratch)
}
