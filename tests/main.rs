//! One integration binary: every store-facing test runs against SQLite and PostgreSQL,
//! each in a fresh database of its own.

mod api;
mod app;
mod crash;
mod helpers;
mod hostile;
mod legacy_log;
mod processes;
mod projections;
mod providers;
mod reconciler;
mod reliability;
mod store;
mod webhooks;
