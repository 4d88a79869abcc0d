//! The ledger's use cases, between the HTTP layer and the domain: each takes typed input,
//! owns its transactions, and returns a typed outcome (what it committed, with positions).
//! Handlers parse, call one of these and map the outcome; nothing here knows HTTP.

pub mod creation_quota;
mod error;
mod expire_order;
mod gateway_payment;
pub mod idempotency;
mod place_order;
mod reconcile_order;
mod reconcile_refunds;
mod request_refund;
// A public module rather than re-exports: its evidence and outcome types belong to settling,
// and the integration tests settle events through it directly.
pub mod settle;

pub use creation_quota::{CreationQuota, QuotaSettings};
pub use error::LedgerError;
pub use expire_order::{expire_order, ExpireOrder, Expiry};
pub use gateway_payment::{reconciled_event_id, PaymentRecorded};
pub use idempotency::IdempotencyKey;
pub use place_order::{place_order, PlaceOrder, Placed, ORDER_PAYMENT_WINDOW};
pub use reconcile_order::{reconcile_order, Due, PaymentCheck, ReconcileOrder, Reconciled};
pub use reconcile_refunds::{
    reconcile_refunds, ReconcileRefunds, RefundsReconciled, REFUND_NEVER_SENT_CODE,
};
pub use request_refund::{request_refund, RefundRequested, RequestRefund};
