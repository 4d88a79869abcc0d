//! The ledger's use cases, between the HTTP layer and the domain: each takes typed input,
//! owns its transactions, and returns a typed outcome (what it committed, with positions).
//! Handlers parse, call one of these and map the outcome; nothing here knows HTTP.

pub mod creation_quota;
mod error;
pub mod idempotency;
mod place_order;
mod request_refund;

pub use creation_quota::{CreationQuota, QuotaSettings};
pub use error::LedgerError;
pub use idempotency::IdempotencyKey;
pub use place_order::{place_order, PlaceOrder, Placed, ORDER_PAYMENT_WINDOW};
pub use request_refund::{request_refund, RefundRequested, RequestRefund};
