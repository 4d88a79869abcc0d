//! What the database alone does on this machine, measured in the same run before the
//! workloads: pgbench (TPC-B-like, select-only, and an event-append script) on PostgreSQL,
//! and the same append and point read done in-process on SQLite.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::args::Plan;
use crate::database::ScratchPostgres;
use crate::report::{Figure, Report};
use crate::stats::{rate, Rng};

/// Transactions per second of each baseline, when it ran.
#[derive(Debug, Default, Clone, Copy)]
pub struct Baselines {
    /// pgbench's TPC-B-like transaction (PostgreSQL only).
    pub tpcb: Option<f64>,
    /// One primary-key read per transaction.
    pub select_only: Option<f64>,
    /// One transaction: insert an event row, upsert a view row.
    pub append: Option<f64>,
    /// The same, holding one advisory lock until commit as the event store's trigger does.
    pub append_serialized: Option<f64>,
}

/// The scratch tables the append script writes: an events-like log and a view-like table.
const SCRATCH_TABLES: &str = "
CREATE TABLE bench_events (
    position bigserial PRIMARY KEY,
    aggregate_id text NOT NULL,
    sequence bigint NOT NULL,
    event_type text NOT NULL,
    payload jsonb NOT NULL,
    metadata jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (aggregate_id, sequence)
);
CREATE TABLE bench_views (
    id text PRIMARY KEY,
    status text NOT NULL,
    last_position bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
";

const APPEND_BODY: &str = "
INSERT INTO bench_events (aggregate_id, sequence, event_type, payload, metadata)
    VALUES (gen_random_uuid()::text, 1, 'PaymentConfirmed',
        '{\"PaymentConfirmed\":{\"charge_id\":\"ch_benchbenchbenchbenchbenc\",\"amount\":{\"amount_minor\":9900,\"currency\":\"CNY\"},\"paid_at\":\"2026-01-01T00:00:00Z\"}}',
        '{\"actor\":\"gateway\",\"source\":\"webhook\",\"request_id\":\"bench\"}');
INSERT INTO bench_views (id, status, last_position, updated_at)
    VALUES ('order-' || :id, 'paid', currval('bench_events_position_seq'), now())
    ON CONFLICT (id) DO UPDATE
    SET status = excluded.status, last_position = excluded.last_position, updated_at = excluded.updated_at;
END;
";

fn append_script(serialized: bool) -> String {
    let lock = if serialized {
        // The key the event store's position trigger locks.
        "SELECT pg_advisory_xact_lock(7271100001);\n"
    } else {
        ""
    };
    format!("\\set id random(1, 100000)\nBEGIN;\n{lock}{APPEND_BODY}")
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// pgbench against a scratch database on the server at `admin_url`.
pub async fn postgres(
    admin_url: &str,
    plan: &Plan,
    work_dir: &Path,
    report: &mut Report,
) -> anyhow::Result<Baselines> {
    let Some(pgbench) = find_on_path("pgbench") else {
        println!("baseline.postgres pgbench=missing (not on PATH): ratios to PostgreSQL baselines are n/a");
        return Ok(Baselines::default());
    };
    let scratch = ScratchPostgres::create(admin_url, "pgbench").await?;
    let seconds = plan.window.as_secs().max(1).to_string();
    let clients = plan.clients.to_string();
    let threads = plan.clients.min(2).to_string();
    run_pgbench(&pgbench, &["-i", "-s", "1", "-q"], &scratch.url).await?;

    {
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(&scratch.url).await?;
        sqlx::raw_sql(SCRATCH_TABLES)
            .execute(&mut connection)
            .await?;
        let _ = connection.close().await;
    }
    let append_path = work_dir.join("append.sql");
    let serialized_path = work_dir.join("append_serialized.sql");
    std::fs::write(&append_path, append_script(false))?;
    std::fs::write(&serialized_path, append_script(true))?;
    let append_file = append_path.display().to_string();
    let serialized_file = serialized_path.display().to_string();

    let common = [
        "-c",
        clients.as_str(),
        "-j",
        threads.as_str(),
        "-T",
        seconds.as_str(),
    ];
    let mut baselines = Baselines::default();
    let runs: [(&str, Vec<&str>); 4] = [
        ("tpcb", vec![]),
        ("select_only", vec!["-S"]),
        ("append", vec!["-n", "-f", append_file.as_str()]),
        (
            "append_serialized",
            vec!["-n", "-f", serialized_file.as_str()],
        ),
    ];
    for (name, extra) in runs {
        let mut arguments: Vec<&str> = common.to_vec();
        arguments.extend(extra);
        let output = run_pgbench(&pgbench, &arguments, &scratch.url).await?;
        let tps = parse_tps(&output)
            .with_context(|| format!("no `tps = ` in pgbench's output:\n{output}"))?;
        let slot = match name {
            "tpcb" => &mut baselines.tpcb,
            "select_only" => &mut baselines.select_only,
            "append" => &mut baselines.append,
            _ => &mut baselines.append_serialized,
        };
        *slot = Some(tps);
        report.add(
            Figure::new(format!("baseline.postgres.{name}"))
                .value("tps", format!("{tps:.1}"))
                .value("clients", &clients)
                .value("seconds", &seconds)
                .value("source", "pgbench"),
        );
    }
    Ok(baselines)
}

async fn run_pgbench(pgbench: &Path, arguments: &[&str], url: &str) -> anyhow::Result<String> {
    let mut command = tokio::process::Command::new(pgbench);
    command.args(arguments).arg(url).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(600), command.output())
        .await
        .context("pgbench did not finish in 10 minutes")?
        .context("cannot run pgbench")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!(
            "pgbench {} failed ({}):\n{text}",
            arguments.join(" "),
            output.status
        );
    }
    Ok(text)
}

/// The first `tps = N` of pgbench's report.
pub fn parse_tps(output: &str) -> Option<f64> {
    output.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("tps = ")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The same append and point read on an SQLite file with the store's settings (WAL,
/// synchronous=FULL): one writer appends; `clients` tasks read.
pub async fn sqlite(
    plan: &Plan,
    work_dir: &Path,
    report: &mut Report,
) -> anyhow::Result<Baselines> {
    let options = SqliteConnectOptions::new()
        .filename(work_dir.join("baseline.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE bench_events (position INTEGER PRIMARY KEY AUTOINCREMENT,
            aggregate_id TEXT NOT NULL, sequence INTEGER NOT NULL, event_type TEXT NOT NULL,
            payload TEXT NOT NULL, metadata TEXT NOT NULL, recorded_at TEXT NOT NULL,
            UNIQUE (aggregate_id, sequence));
         CREATE TABLE bench_views (id TEXT PRIMARY KEY, status TEXT NOT NULL,
            last_position INTEGER NOT NULL, updated_at TEXT NOT NULL);",
    )
    .execute(&pool)
    .await?;

    // Appends: one writer, as SQLite allows.
    let started = Instant::now();
    let mut appended = 0_usize;
    let mut rng = Rng::from_entropy();
    while started.elapsed() < plan.window {
        let mut transaction = pool.begin().await?;
        let position: i64 = sqlx::query_scalar(
            "INSERT INTO bench_events (aggregate_id, sequence, event_type, payload, metadata, recorded_at)
             VALUES (?, 1, 'PaymentConfirmed', ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
             RETURNING position",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(r#"{"PaymentConfirmed":{"charge_id":"ch_benchbenchbenchbenchbenc","amount":{"amount_minor":9900,"currency":"CNY"}}}"#)
        .bind(r#"{"actor":"gateway","source":"webhook","request_id":"bench"}"#)
        .fetch_one(&mut *transaction)
        .await?;
        sqlx::query(
            "INSERT INTO bench_views (id, status, last_position, updated_at)
             VALUES (?, 'paid', ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
             ON CONFLICT (id) DO UPDATE SET status = excluded.status,
                last_position = excluded.last_position, updated_at = excluded.updated_at",
        )
        .bind(format!("order-{}", rng.below(10_000)))
        .bind(position)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        appended += 1;
    }
    let append = rate(appended, started.elapsed());
    report.add(
        Figure::new("baseline.sqlite.append")
            .value("tps", format!("{append:.1}"))
            .value("writers", 1)
            .value("seconds", plan.window.as_secs())
            .value("source", "in-process_sqlx,WAL,synchronous=FULL"),
    );

    // Point reads by primary key from `clients` tasks.
    let keys: Arc<Vec<String>> = Arc::new(
        sqlx::query_scalar("SELECT id FROM bench_views")
            .fetch_all(&pool)
            .await?,
    );
    anyhow::ensure!(!keys.is_empty(), "the SQLite baseline wrote no view rows");
    let started = Instant::now();
    let deadline = started + plan.window;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.clients {
        let pool = pool.clone();
        let keys = keys.clone();
        tasks.spawn(async move {
            let mut rng = Rng::from_entropy();
            let mut done = 0_usize;
            while Instant::now() < deadline {
                let key = keys.get(rng.below(keys.len())).cloned().unwrap_or_default();
                sqlx::query("SELECT id, status, last_position FROM bench_views WHERE id = ?")
                    .bind(key)
                    .fetch_optional(&pool)
                    .await?;
                done += 1;
            }
            anyhow::Ok(done)
        });
    }
    let mut reads = 0_usize;
    while let Some(result) = tasks.join_next().await {
        reads += result??;
    }
    let select_only = rate(reads, started.elapsed());
    report.add(
        Figure::new("baseline.sqlite.select_only")
            .value("tps", format!("{select_only:.1}"))
            .value("clients", plan.clients)
            .value("seconds", plan.window.as_secs())
            .value("source", "in-process_sqlx,8_connections"),
    );
    pool.close().await;
    Ok(Baselines {
        tpcb: None,
        select_only: Some(select_only),
        append: Some(append),
        append_serialized: Some(append),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_tps;

    #[test]
    fn reads_pgbench_tps() {
        let output = "latency average = 2.568 ms\ninitial connection time = 14.277 ms\n\
                      tps = 1557.589140 (without initial connection time)\n";
        assert_eq!(parse_tps(output), Some(1557.589140));
        assert_eq!(parse_tps("nothing"), None);
    }
}
