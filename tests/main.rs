//! One integration binary: every store-facing test runs against SQLite and PostgreSQL,
//! each in a fresh database of its own.

mod api;
mod app;
mod crash;
mod helpers;
mod hostile;
mod processes;
mod projection_batch;
mod projections;
mod reconciler;
mod reliability;
mod store;
mod webhooks;
