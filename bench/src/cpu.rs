//! Where the CPU went during a workload, from /proc: the server, every PostgreSQL process,
//! this process (the load generator), and the machine as a whole. Linux only; elsewhere the
//! figures read `n/a`.

use std::time::{Duration, Instant};

/// Clock ticks per second of the CPU times in /proc (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    at: Instant,
    server_ticks: Option<u64>,
    postgres_ticks: u64,
    bench_ticks: Option<u64>,
    machine: Option<(u64, u64)>,
}

/// utime + stime of one process, in ticks.
fn process_ticks(stat_path: &str) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 0, utime is 11, stime is 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime.saturating_add(stime)))
}

/// CPU ticks of every process called `postgres` (the postmaster and its backends).
fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.bytes().all(|byte| byte.is_ascii_digit()))
        })
        .filter_map(|entry| process_ticks(&format!("{}/stat", entry.path().display())))
        .filter(|(name, _)| name == "postgres")
        .map(|(_, ticks)| ticks)
        .sum()
}

/// (busy, total) ticks of all CPUs.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .filter_map(|value| value.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    // idle and iowait.
    let idle = values.get(3)?.saturating_add(*values.get(4)?);
    Some((total.saturating_sub(idle), total))
}

pub fn snapshot(server_pid: Option<u32>) -> CpuSnapshot {
    CpuSnapshot {
        at: Instant::now(),
        server_ticks: server_pid
            .and_then(|pid| process_ticks(&format!("/proc/{pid}/stat")))
            .map(|(_, ticks)| ticks),
        postgres_ticks: postgres_ticks(),
        bench_ticks: process_ticks("/proc/self/stat").map(|(_, ticks)| ticks),
        machine: machine_ticks(),
    }
}

fn ticks_f64(ticks: u64) -> f64 {
    f64::from(u32::try_from(ticks).unwrap_or(u32::MAX))
}

/// Cores used on average between two snapshots.
fn cores(before: Option<u64>, after: Option<u64>, wall: Duration) -> String {
    match (before, after) {
        (Some(before), Some(after)) if wall.as_secs_f64() > 0.0 => {
            let seconds = ticks_f64(after.saturating_sub(before)) / ticks_f64(TICKS_PER_SECOND);
            format!("{:.2}", seconds / wall.as_secs_f64())
        }
        _ => "n/a".to_owned(),
    }
}

/// `cpu_cores(server/postgres/bench)=1.10/0.62/0.21 machine_busy=97%`.
pub fn usage(before: &CpuSnapshot, after: &CpuSnapshot) -> String {
    let wall = after.at.saturating_duration_since(before.at);
    let server = cores(before.server_ticks, after.server_ticks, wall);
    let postgres = if after.postgres_ticks == 0 {
        "n/a".to_owned()
    } else {
        cores(
            Some(before.postgres_ticks),
            Some(after.postgres_ticks),
            wall,
        )
    };
    let bench = cores(before.bench_ticks, after.bench_ticks, wall);
    let busy = match (before.machine, after.machine) {
        (Some((busy_before, total_before)), Some((busy_after, total_after)))
            if total_after > total_before =>
        {
            let busy = ticks_f64(busy_after.saturating_sub(busy_before));
            let total = ticks_f64(total_after.saturating_sub(total_before));
            format!("{:.0}%", 100.0 * busy / total)
        }
        _ => "n/a".to_owned(),
    };
    format!("cpu_cores(server/postgres/bench)={server}/{postgres}/{bench} machine_busy={busy}")
}
