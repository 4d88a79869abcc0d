//! One integration binary: every store-facing test runs against SQLite and PostgreSQL,
//! each in a fresh database of its own.

mod api;
mod app;
mod binary;
mod chain;
mod crash;
mod evidence;
mod export;
mod grants;
mod helpers;
mod hostile;
mod legacy_log;
mod metrics_access;
mod processes;
mod projection_batch;
mod projections;
mod providers;
mod reconciler;
mod reliability;
mod slow_clients;
mod store;
mod webhook_gaps;
mod webhooks;
