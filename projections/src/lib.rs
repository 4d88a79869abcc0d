//! Read models of the ledger, derived from the event log by global position.
//!
//! Nothing here decides anything: the aggregates decide, the log records, and these views
//! are a disposable function of the log that a replay can rebuild and check at any time.

pub mod batch;
pub mod chain;
pub mod error;
pub mod log;
pub mod membership;
pub mod order_status;
pub mod order_view;
pub mod projector;
pub mod refund_status;
pub mod replay;
pub mod schema;
mod sql;
pub mod transaction_history;
pub mod upcast;

pub use error::ProjectionError;
pub use log::{LedgerEvent, LogError, StoredEvent};
pub use projector::{BatchOutcome, Progress, Projector};
pub use schema::Tables;
