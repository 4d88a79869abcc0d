//! Given/when/then examples for the order aggregate, one file per area, plus properties.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod after_refund;
mod fixtures;
mod lifecycle;
mod payment;
mod properties;
mod refund;
