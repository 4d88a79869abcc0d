//! The payment gateway port: what the ledger needs from a gateway, whatever the gateway is.

mod local;
pub mod pingpp;
mod port;

pub use local::LocalSandbox;
pub use port::*;
