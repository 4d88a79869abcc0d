//! The workloads. Each is bounded in time (the plan's window) and in count, and adds its
//! figures to the report.

pub mod history;
pub mod hotspot;
pub mod idle;
pub mod payments;
pub mod polls;
pub mod replay;
pub mod sequential;
pub mod webhooks;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rsa::RsaPrivateKey;

use crate::args::Plan;
use crate::baseline::Baselines;
use crate::http::Api;

/// What every workload run against a started server needs.
pub struct Context<'a> {
    /// `postgres` or `sqlite`, the suffix of every figure name.
    pub store: &'static str,
    pub plan: &'a Plan,
    pub api: Api,
    pub baselines: Baselines,
    /// The key the sandbox signs webhooks with (the bench gave it to the server).
    pub signing_key: &'a RsaPrivateKey,
    pub server_pid: Option<u32>,
    /// A tag that keeps user and order names of this run apart from any other.
    pub tag: String,
    /// Reads of the log and the views, straight from the database.
    pub read: sqlx::AnyPool,
}

/// Refused or failed requests of one kind, counted by what happened.
#[derive(Debug, Default, Clone)]
pub struct Failures {
    counts: BTreeMap<String, usize>,
}

/// A client task gives up after this many transport errors (the server is likely gone).
pub const TRANSPORT_ERRORS_MAX: usize = 100;

impl Failures {
    pub fn add(&mut self, what: impl Into<String>) {
        *self.counts.entry(what.into()).or_default() += 1;
    }

    pub fn merge(&mut self, other: Failures) {
        for (what, count) in other.counts {
            *self.counts.entry(what).or_default() += count;
        }
    }

    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// `0`, or `3(create 409:2,transport:1)`.
    pub fn summary(&self) -> String {
        if self.counts.is_empty() {
            return "0".to_owned();
        }
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(what, count)| format!("{what}:{count}"))
            .collect();
        format!("{}({})", self.total(), parts.join(","))
    }
}

/// PostgreSQL's own counters over a workload: transactions committed in the scratch database,
/// rows it wrote (inserted + updated + deleted) and WAL syncs (fsyncs) of the whole cluster.
#[derive(Debug, Clone, Copy)]
pub struct PgCounters {
    /// When the reading was taken.
    pub at: Instant,
    pub transactions: i64,
    pub rows_written: i64,
    pub wal_syncs: i64,
}

/// Backends publish their statistics at most once a second; waiting this long before a
/// reading makes the counters include most of the workload that just ended. A backend that
/// goes idle within a second of its last report holds its counts back for up to
/// `STATS_IDLE_FLUSH` (see `Plan::stats_settle`).
const STATS_FLUSH_WAIT: Duration = Duration::from_millis(1100);
/// PostgreSQL's `PGSTAT_IDLE_INTERVAL` (10 s) and a margin: after this long with no load,
/// every backend has published what it did.
pub const STATS_IDLE_FLUSH: Duration = Duration::from_millis(10_500);

/// Counters per second (an idle server's background work).
#[derive(Debug, Clone, Copy)]
pub struct PgRates {
    pub transactions: f64,
    pub rows_written: f64,
    pub wal_syncs: f64,
}

impl PgCounters {
    /// The counters a second after the workload; `None` on SQLite or when they cannot be read.
    pub async fn read(context: &Context<'_>) -> Option<PgCounters> {
        Self::read_after(context, STATS_FLUSH_WAIT).await
    }

    /// The counters after waiting `wait`; `None` on SQLite or when they cannot be read.
    pub async fn read_after(context: &Context<'_>, wait: Duration) -> Option<PgCounters> {
        if context.store != "postgres" {
            return None;
        }
        tokio::time::sleep(wait).await;
        let at = Instant::now();
        let row = sqlx::query(
            "SELECT CAST(d.xact_commit AS BIGINT) AS transactions, \
                    CAST(d.tup_inserted + d.tup_updated + d.tup_deleted AS BIGINT) AS rows_written, \
                    CAST(w.wal_sync AS BIGINT) AS wal_syncs \
             FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()",
        )
        .fetch_one(&context.read)
        .await
        .ok()?;
        use sqlx::Row;
        Some(PgCounters {
            at,
            transactions: row.try_get("transactions").ok()?,
            rows_written: row.try_get("rows_written").ok()?,
            wal_syncs: row.try_get("wal_syncs").ok()?,
        })
    }

    /// The change from `before` to `self`, per second of the time between the readings.
    pub fn rates_since(&self, before: &PgCounters) -> Option<PgRates> {
        let seconds = self.at.saturating_duration_since(before.at).as_secs_f64();
        if seconds <= 0.0 {
            return None;
        }
        Some(PgRates {
            transactions: delta_f64(self.transactions - before.transactions) / seconds,
            rows_written: delta_f64(self.rows_written - before.rows_written) / seconds,
            wal_syncs: delta_f64(self.wal_syncs - before.wal_syncs) / seconds,
        })
    }

    /// `pg_xacts/op=… rows/op=… wal_syncs/op=…` between two readings, per `operations`;
    /// `n/a` for each where there are no readings (SQLite).
    pub fn per_operation(
        before: Option<PgCounters>,
        after: Option<PgCounters>,
        operations: usize,
        unit: &str,
    ) -> String {
        Self::per_operation_less_idle(before, after, None, operations, unit)
    }

    /// As `per_operation`, after subtracting what an idle server does over the same time
    /// when `idle` is given.
    pub fn per_operation_less_idle(
        before: Option<PgCounters>,
        after: Option<PgCounters>,
        idle: Option<PgRates>,
        operations: usize,
        unit: &str,
    ) -> String {
        match Self::per_operation_values(before, after, idle, operations) {
            Some(per) => format!(
                "pg_xacts/{unit}={:.2} rows/{unit}={:.2} wal_syncs/{unit}={:.2}",
                per.transactions, per.rows_written, per.wal_syncs
            ),
            None => format!("pg_xacts/{unit}=n/a rows/{unit}=n/a wal_syncs/{unit}=n/a"),
        }
    }

    /// The counters' changes per operation (in `PgRates`, read "per operation"), less what
    /// an idle server does over the same time when `idle` is given; `None` without readings.
    pub fn per_operation_values(
        before: Option<PgCounters>,
        after: Option<PgCounters>,
        idle: Option<PgRates>,
        operations: usize,
    ) -> Option<PgRates> {
        let (before, after) = (before?, after?);
        let count = crate::stats::count_f64(operations);
        if count <= 0.0 {
            return None;
        }
        let seconds = after.at.saturating_duration_since(before.at).as_secs_f64();
        let idle = idle.unwrap_or(PgRates {
            transactions: 0.0,
            rows_written: 0.0,
            wal_syncs: 0.0,
        });
        let per = |delta: i64, idle_rate: f64| {
            ((delta_f64(delta) - idle_rate * seconds) / count).max(0.0)
        };
        Some(PgRates {
            transactions: per(after.transactions - before.transactions, idle.transactions),
            rows_written: per(after.rows_written - before.rows_written, idle.rows_written),
            wal_syncs: per(after.wal_syncs - before.wal_syncs, idle.wal_syncs),
        })
    }
}

/// A counter's change as a float (negative changes, after a statistics reset, count as 0).
fn delta_f64(delta: i64) -> f64 {
    u32::try_from(delta.max(0)).map_or(f64::from(u32::MAX), f64::from)
}
