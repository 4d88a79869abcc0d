//! Ping++ keys load like every other provider's: see the shared loader.

pub use crate::keys::*;
