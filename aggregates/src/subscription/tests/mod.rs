//! Given/when/then examples for the subscription aggregate, plus properties.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fixtures;
mod properties;
mod rules;
