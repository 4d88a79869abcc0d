//! The payment gateway port: what the ledger needs from a gateway, whatever the gateway is, and
//! one module per provider behind it. Nothing here knows the web framework the service uses:
//! webhooks arrive as [`WebhookHeaders`] and raw bytes.

pub mod alipay;
pub mod answer;
pub mod clock;
pub mod config;
mod headers;
mod http;
pub mod keys;
pub mod pingpp;
mod port;
pub mod routing;
mod secret;
pub mod signature;
#[cfg(test)]
mod test_keys;
pub mod verify_cli;
pub mod wechatpay;
pub mod yuan;

pub use headers::WebhookHeaders;
pub use port::*;
pub use secret::Secret;
