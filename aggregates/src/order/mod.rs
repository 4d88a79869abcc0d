//! The order aggregate: one purchase of one plan, from QR code to payment to refunds.
//! Keeping every money fact about a purchase in one consistency boundary is what lets the
//! rules (never refund more than paid, never confirm twice) be checked without locks.

mod after_refund;
mod aggregate;
mod apply;
mod command;
mod decide;
mod error;
mod event;
mod payment;
mod refund;
mod refunding;
mod state;
mod status;
#[cfg(test)]
mod tests;

pub use after_refund::OrderAfterRefund;
pub use command::{OrderCommand, ReportedRefund};
pub use error::OrderError;
pub use event::OrderEvent;
pub use refund::{RefundRecord, RefundStatus};
pub use refunding::MAX_REFUNDS_PER_ORDER;
pub use state::Order;
pub use status::OrderStatus;
