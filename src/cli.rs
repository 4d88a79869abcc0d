//! The `payledger` command line.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "payledger",
    version,
    about = "An event-sourced payment ledger for membership plans"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate the database, then serve the HTTP API (the default when no command is given).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Print a bearer token signed with the configured secret.
    Token {
        /// The user id the token speaks for (its `sub`).
        #[arg(long)]
        user: String,
        /// Make it an admin token.
        #[arg(long)]
        admin: bool,
        /// How long the token is valid: 90s, 15m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Rebuild every view from the event log and compare with the live views (exit 0 only
    /// when equal), or with --as-of, rebuild the state at that instant and print it.
    Replay {
        /// An RFC 3339 instant, e.g. 2026-11-25T12:00:00Z.
        #[arg(long)]
        as_of: Option<String>,
    },
}
