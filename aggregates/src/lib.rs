//! The payment domain as plain data and pure functions, so every rule can be tested without a database or a clock.
//!
//! Nothing in this crate performs I/O, reads the time or draws random numbers: the server does those
//! things first and passes the results in as command data. Money is integer minor units only.
#![deny(clippy::float_arithmetic)]

pub mod channel;
pub mod ids;
pub mod money;
pub mod order;
pub mod plan;
pub mod subscription;

mod text;

#[cfg(test)]
mod error_codes;

pub use channel::*;
pub use ids::*;
pub use money::{Currency, Money, MoneyError};
pub use order::{
    Order, OrderAfterRefund, OrderCommand, OrderError, OrderEvent, OrderStatus, ReportedRefund,
};
pub use plan::*;
pub use subscription::{
    GrantedPeriod, MembershipStatus, Subscription, SubscriptionCommand, SubscriptionError,
    SubscriptionEvent,
};
