//! payledger: an event-sourced payment ledger that sells membership plans.
//!
//! This crate is the service and its CLI: configuration, the event store wiring, the HTTP API.
//! Business rules live in the `aggregates` crate; read models in `projections`.

pub mod api;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod checkout;
pub mod cli;
pub mod config;
pub mod error;
pub mod gateway_setup;
pub mod ledger;
pub mod limits;
pub mod log_budget;
pub mod merchant;
pub mod metrics;
pub mod process;
pub mod sandbox_key;
pub mod server;
pub mod state;
pub mod store;
pub mod variable;

pub use api::router;
pub use state::AppState;
