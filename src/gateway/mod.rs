//! The payment gateway port: what the ledger needs from a gateway, whatever the gateway is.

mod local;
mod port;

pub use local::LocalSandbox;
pub use port::{ChargeRequest, GatewayError, IssuedCharge, PaymentGateway};
