//! Command-line options and the sizes they imply.

use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreChoice {
    Postgres,
    Sqlite,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Workload {
    /// Transactions per second of the started server with nothing to do.
    Idle,
    /// One client paying one order at a time: PostgreSQL work per paid order.
    Sequential,
    /// Signed `charge.succeeded` webhooks built in advance, delivered concurrently.
    #[value(name = "webhooks_presigned")]
    WebhooksPresigned,
    Payments,
    Polls,
    Hotspot,
    History,
    Replay,
}

/// Load benchmark of the payledger server: starts the real `payledger` binary on a scratch
/// database, drives it over HTTP from this process, and prints one line per figure.
#[derive(Debug, Parser)]
#[command(name = "payledger-bench", version)]
pub struct Args {
    /// Small sizes and one second per workload, for a smoke run (well under a minute).
    #[arg(long)]
    pub quick: bool,
    /// Which event store to run the server on.
    #[arg(long, value_enum, default_value = "postgres")]
    pub store: StoreChoice,
    /// Concurrent client tasks (each with its own keep-alive connection pool).
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Length of each timed workload, in seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Events in the log when `payledger replay` is timed (default 100,000; 5,000 with --quick).
    #[arg(long)]
    pub replay_events: Option<usize>,
    /// Run only these workloads (comma-separated); the baselines always run.
    /// `idle,sequential,webhooks_presigned` measure the write path's PostgreSQL work.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Workload>,
}

/// The sizes every workload uses, derived from the options.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    pub clients: usize,
    pub window: Duration,
    /// Orders pre-created for the polling workload.
    pub poll_orders: usize,
    /// Prior events of the Subscription aggregates whose command latency is measured.
    pub history_lengths: Vec<usize>,
    /// Commands timed per history length.
    pub history_samples: usize,
    /// Events the replay workload appends through the command bus before topping up.
    pub replay_events: usize,
    /// Longest the command-bus part of the replay set-up may take before the rest is copied
    /// in bulk (PostgreSQL) or the log is used as it is (SQLite).
    pub replay_append_budget: Duration,
    /// Every `sample_every`-th order of the payments workload is polled every 2 ms to measure
    /// projection lag; the others wait with a long poll.
    pub sample_every: usize,
    /// How long the idle server is watched.
    pub idle_window: Duration,
    /// Orders paid one after the other by the sequential workload.
    pub sequential_orders: usize,
    /// Orders created, and webhooks signed for them, before the presigned deliveries.
    pub presigned_webhooks: usize,
    /// How long the workloads that count PostgreSQL's work per operation wait with no load
    /// before each reading, so that every backend has published its counters. The full run
    /// waits out PostgreSQL's idle flush interval; `--quick` waits 1.1 s, so its counts of
    /// the last second of a workload can come out low.
    pub stats_settle: Duration,
    pub only: Vec<Workload>,
}

impl Plan {
    pub fn from_args(args: &Args) -> anyhow::Result<Self> {
        anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
        anyhow::ensure!(args.seconds > 0, "--seconds must be at least 1");
        let plan = if args.quick {
            Plan {
                quick: true,
                clients: args.clients.min(8),
                window: Duration::from_secs(1),
                poll_orders: 40,
                history_lengths: vec![10, 100, 1_000],
                history_samples: 20,
                replay_events: args.replay_events.unwrap_or(5_000),
                replay_append_budget: Duration::from_secs(8),
                sample_every: 4,
                idle_window: Duration::from_secs(3),
                sequential_orders: 10,
                presigned_webhooks: 200,
                stats_settle: Duration::from_millis(1100),
                only: args.only.clone(),
            }
        } else {
            Plan {
                quick: false,
                clients: args.clients,
                window: Duration::from_secs(args.seconds),
                poll_orders: 200,
                history_lengths: vec![10, 1_000, 10_000],
                history_samples: 50,
                replay_events: args.replay_events.unwrap_or(100_000),
                replay_append_budget: Duration::from_secs(120),
                sample_every: 4,
                idle_window: Duration::from_secs(10),
                sequential_orders: 50,
                presigned_webhooks: 4_000,
                stats_settle: crate::workloads::STATS_IDLE_FLUSH,
                only: args.only.clone(),
            }
        };
        Ok(plan)
    }

    pub fn runs(&self, workload: Workload) -> bool {
        self.only.is_empty() || self.only.contains(&workload)
    }
}
