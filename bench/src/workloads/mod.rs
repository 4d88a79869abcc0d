//! The workloads. Each is bounded in time (the plan's window) and in count, and adds its
//! figures to the report.

pub mod history;
pub mod hotspot;
pub mod payments;
pub mod polls;
pub mod replay;

use std::collections::BTreeMap;
use std::time::Duration;

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

/// PostgreSQL's own counters over a workload: transactions committed in the scratch database
/// and WAL syncs (fsyncs) of the whole cluster.
#[derive(Debug, Clone, Copy)]
pub struct PgCounters {
    pub transactions: i64,
    pub wal_syncs: i64,
}

/// Backends publish their statistics at most once a second; waiting this long before a
/// reading makes the counters include the workload that just ended.
const STATS_FLUSH_WAIT: Duration = Duration::from_millis(1100);

impl PgCounters {
    /// The counters now; `None` on SQLite or when they cannot be read.
    pub async fn read(context: &Context<'_>) -> Option<PgCounters> {
        if context.store != "postgres" {
            return None;
        }
        tokio::time::sleep(STATS_FLUSH_WAIT).await;
        let row = sqlx::query(
            "SELECT CAST(d.xact_commit AS BIGINT) AS transactions, \
                    CAST(w.wal_sync AS BIGINT) AS wal_syncs \
             FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()",
        )
        .fetch_one(&context.read)
        .await
        .ok()?;
        use sqlx::Row;
        Some(PgCounters {
            transactions: row.try_get("transactions").ok()?,
            wal_syncs: row.try_get("wal_syncs").ok()?,
        })
    }

    /// `pg_xacts/op=… wal_syncs/op=…` between two readings, per `operations`.
    pub fn per_operation(
        before: Option<PgCounters>,
        after: Option<PgCounters>,
        operations: usize,
        unit: &str,
    ) -> Option<String> {
        let (before, after) = (before?, after?);
        let count = crate::stats::count_f64(operations);
        if count <= 0.0 {
            return None;
        }
        let per = |delta: i64| {
            let delta = u32::try_from(delta.max(0)).map_or(f64::from(u32::MAX), f64::from);
            delta / count
        };
        Some(format!(
            "pg_xacts/{unit}={:.1} wal_syncs/{unit}={:.2}",
            per(after.transactions - before.transactions),
            per(after.wal_syncs - before.wal_syncs)
        ))
    }
}
