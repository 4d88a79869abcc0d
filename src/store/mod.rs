//! The event store: PostgreSQL (production) or SQLite (embedded), chosen by `DATABASE_URL`.
//!
//! Every write is one transaction that loads the aggregates it touches, decides, appends and
//! applies the views (see `append`); everything goes through one `AnyPool`, so the SQL is
//! written once for both databases where they agree, and per `Dialect` where they do not.

pub mod append;
mod commands;
mod connect;
mod database_url;
mod decide;
pub mod grants;
mod hub;
pub mod load;
mod locks;
mod metadata;
mod retry;

/// Take a snapshot of a long-lived aggregate every this many events, so loading one costs at
/// most a snapshot plus this many events however long its history grows.
pub const SNAPSHOT_EVERY: i64 = 50;

pub use append::{Appended, Dialect, StreamAppend};
pub(crate) use commands::Attempt;
pub use commands::{Checked, CommandBus, Committed, Precondition, PreconditionFuture};
pub use connect::{link_chain, migrate, Backend, Store, StoreError};
pub use database_url::{DatabaseUrl, SQLITE_FILE_NAME};
pub use decide::Decide;
pub use hub::{Commit, CommitEvents, CommitHub};
pub use locks::Locks;
pub use metadata::{keys as metadata_keys, Actor, EventMetadata, Source};
pub(crate) use retry::retry_on_conflict;
pub use retry::COMMAND_RETRIES_MAX;
