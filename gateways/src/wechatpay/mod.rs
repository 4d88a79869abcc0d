//! WeChat Pay API v3, spoken directly: requests signed with the `WECHATPAY2-SHA256-RSA2048`
//! Authorization header, answers and callbacks verified over `timestamp\nnonce\nbody\n` with
//! the platform key named by `Wechatpay-Serial`, callbacks' `resource` opened with
//! AEAD_AES_256_GCM and the APIv3 key.

pub mod client;
pub mod notify;
pub mod platform;
pub mod resource;
pub mod sign;
pub mod wire;
