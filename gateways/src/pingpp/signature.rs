//! Ping++ signs with RSA2 like every other provider: see the shared signature module.

pub use crate::signature::*;
