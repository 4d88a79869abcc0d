//! The started server with nothing to do: what its background work (projector, processes,
//! reconciler) costs PostgreSQL per second. Runs first, before any load, and its rate is
//! what the sequential workload subtracts from its own counts.

use std::time::{Duration, Instant};

use super::{Context, PgCounters, PgRates};
use crate::cpu;
use crate::report::{Figure, Report};

/// How long one look for writes lasts while waiting for the server to go quiet.
const QUIET_PROBE: Duration = Duration::from_secs(2);
/// Rows an idle server may write in one probe and still count as quiet.
const QUIET_ROWS_MAX: i64 = 2;

/// The idle server's counters at the end of the window, and its rates over the window.
#[derive(Debug, Clone, Copy)]
pub struct IdleReading {
    pub end: PgCounters,
    pub rates: PgRates,
}

/// Watches the idle server for the plan's idle window and reports what it did.
pub async fn run(
    context: &Context<'_>,
    report: &mut Report,
) -> anyhow::Result<Option<IdleReading>> {
    let (reading, cpu_usage, seconds) = measure(context).await;
    let line = match &reading {
        Some(reading) => format!(
            "pg_xacts/s={:.2} rows/s={:.2} wal_syncs/s={:.2}",
            reading.rates.transactions, reading.rates.rows_written, reading.rates.wal_syncs
        ),
        None => "pg_xacts/s=n/a rows/s=n/a wal_syncs/s=n/a".to_owned(),
    };
    report.add(
        Figure::new(format!("idle.{}", context.store))
            .value("seconds", format!("{seconds:.1}"))
            .text(line)
            .text(cpu_usage)
            .value(
                "settle_s",
                format!("{:.1}", context.plan.stats_settle.as_secs_f64()),
            ),
    );
    Ok(reading)
}

/// Waits for the counters to settle, then reads them at both ends of the idle window.
/// Returns the reading (PostgreSQL only), the CPU use over the window and its length.
pub async fn measure(context: &Context<'_>) -> (Option<IdleReading>, String, f64) {
    let plan = context.plan;
    wait_quiet(context).await;
    let start = PgCounters::read_after(context, plan.stats_settle).await;
    let cpu_before = cpu::snapshot(context.server_pid);
    let started = Instant::now();
    tokio::time::sleep(plan.idle_window).await;
    // Both readings are taken in the same steady idle state, so counts a backend has not yet
    // published are about as many at the end as at the start.
    let end = PgCounters::read_after(context, std::time::Duration::ZERO).await;
    let cpu_after = cpu::snapshot(context.server_pid);
    let seconds = started.elapsed().as_secs_f64();
    let reading = match (start, end) {
        (Some(start), Some(end)) => end
            .rates_since(&start)
            .map(|rates| IdleReading { end, rates }),
        _ => None,
    };
    (reading, cpu::usage(&cpu_before, &cpu_after), seconds)
}

/// Waits until the scratch database sees (almost) no rows written for `QUIET_PROBE`: after
/// start-up on a log grown beforehand (the history workload), the server's processes can
/// still be working through it. Bounded; returns at once on SQLite.
async fn wait_quiet(context: &Context<'_>) {
    let limit = if context.plan.quick {
        Duration::from_secs(15)
    } else {
        Duration::from_secs(120)
    };
    let started = Instant::now();
    let mut last = PgCounters::read_after(context, Duration::ZERO).await;
    while started.elapsed() < limit {
        let now = PgCounters::read_after(context, QUIET_PROBE).await;
        match (last, now) {
            (Some(before), Some(after))
                if after.rows_written - before.rows_written > QUIET_ROWS_MAX => {}
            _ => break,
        }
        last = now;
    }
    if started.elapsed() > QUIET_PROBE + QUIET_PROBE {
        eprintln!(
            "{}: waited {:.1}s for the server to stop writing before the idle window",
            context.store,
            started.elapsed().as_secs_f64()
        );
    }
}
