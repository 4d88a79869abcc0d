//! One integration binary: every store-facing test runs against SQLite and PostgreSQL,
//! each in a fresh database of its own.

mod api;
mod app;
mod binary;
mod browser;
mod chain;
mod checkout;
mod client_ip;
mod crash;
mod creation_quota;
mod evidence;
mod export;
mod gateway_errors;
mod grants;
mod helpers;
mod hostile;
mod legacy_log;
mod merchant;
mod metrics_access;
mod openapi;
mod plans;
mod processes;
mod projection_batch;
mod projections;
mod providers;
mod qr_svg;
mod reconciler;
mod reliability;
mod schema_check;
mod slow_clients;
mod store;
mod webdriver;
mod webhook_gaps;
mod webhooks;
