//! Alipay's open platform, spoken directly (no aggregator): RSA2-signed form requests to the
//! gateway, signed JSON answers verified over their exact text, and form-encoded asynchronous
//! notifications verified the way Alipay's own SDKs verify them.

pub mod client;
pub mod form;
pub mod notify;
pub mod response;
pub mod sign;
pub mod wire;
