//! The payment gateway port: what the ledger needs from a gateway, whatever the gateway is.

pub mod config;
pub mod pingpp;
mod port;
pub mod sandbox;

pub use port::*;
