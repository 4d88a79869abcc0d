//! The event store: PostgreSQL (production) or SQLite (embedded), chosen by `DATABASE_URL`.
//!
//! cqrs-es appends through the backend's own typed pool (postgres-es / sqlite-es); everything
//! that reads the log by global position, and the read models, go through one `AnyPool` so
//! the projection code is written once for both databases.

mod commands;
mod connect;
mod metadata;

pub use commands::{CommandBus, COMMAND_RETRIES_MAX, SNAPSHOT_EVERY};
pub use connect::{migrate, Store, StoreError};
pub use metadata::{Actor, EventMetadata, Source};
