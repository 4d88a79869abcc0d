//! Ping++: the aggregator in front of Alipay, WeChat Pay and UnionPay. Its protocol lives here
//! (keys, signatures, wire objects, the HTTP client and webhook parsing); the sandbox speaks it
//! too, so the two can only agree.

pub mod client;
pub mod keys;
pub mod refund_list;
pub mod signature;
pub mod verify_cli;
pub mod webhook;
pub mod wire;
