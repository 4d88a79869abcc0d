//! Which providers' protocols the sandbox speaks besides Ping++'s, with the keys each side
//! holds. The sandbox plays the gateway: it holds the gateway's signing keys and only the
//! merchant's public keys, exactly as the real gateways do.

use std::collections::{HashMap, HashSet};

use rsa::{RsaPrivateKey, RsaPublicKey};

use gateways::wechatpay::resource::ApiV3Key;

/// Alipay's side of the open platform.
pub struct AlipaySide {
    pub app_id: String,
    /// Verifies the merchant's requests (the application public key uploaded to Alipay).
    pub app_public_key: RsaPublicKey,
    /// Alipay's own key: signs answers and notifications.
    pub alipay_key: RsaPrivateKey,
    /// The only URL notifications go to; a request naming another is refused.
    pub notify_url: String,
}

/// WeChat Pay's side of API v3.
pub struct WechatPaySide {
    pub mchid: String,
    pub appid: String,
    /// The merchant certificate's serial and public key: verify the merchant's requests.
    pub merchant_serial: String,
    pub merchant_public_key: RsaPublicKey,
    /// The platform key and the serial it is named by: sign answers and callbacks.
    pub platform_serial: String,
    pub platform_key: RsaPrivateKey,
    /// Seals callbacks' resources.
    pub api_v3_key: ApiV3Key,
    /// The only URL callbacks go to; a request naming another is refused.
    pub notify_url: String,
}

/// The protocols spoken besides Ping++'s; an absent one answers 404.
#[derive(Default)]
pub struct Protocols {
    pub alipay: Option<AlipaySide>,
    pub wechatpay: Option<WechatPaySide>,
}

impl std::fmt::Debug for Protocols {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Protocols")
            .field("alipay", &self.alipay.as_ref().map(|side| &side.app_id))
            .field(
                "wechatpay",
                &self.wechatpay.as_ref().map(|side| &side.mchid),
            )
            .finish()
    }
}

/// The protocol a charge was created through, so its notifications speak the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Origin {
    Pingpp,
    Alipay,
    WechatPay,
}

/// What the protocols add to the store: where each charge came from, which were closed,
/// and the merchant's refund numbers.
#[derive(Debug, Default)]
pub(super) struct ProtocolState {
    origins: HashMap<String, Origin>,
    closed: HashSet<String>,
    /// (origin, merchant refund number) -> the store's refund id.
    refund_nos: HashMap<(Origin, String), String>,
}

impl ProtocolState {
    pub(super) fn origin(&self, charge_id: &str) -> Origin {
        self.origins
            .get(charge_id)
            .copied()
            .unwrap_or(Origin::Pingpp)
    }

    pub(super) fn set_origin(&mut self, charge_id: &str, origin: Origin) {
        self.origins.insert(charge_id.to_owned(), origin);
    }

    pub(super) fn close(&mut self, charge_id: &str) {
        self.closed.insert(charge_id.to_owned());
    }

    pub(super) fn is_closed(&self, charge_id: &str) -> bool {
        self.closed.contains(charge_id)
    }

    pub(super) fn refund_id(&self, origin: Origin, refund_no: &str) -> Option<&str> {
        self.refund_nos
            .get(&(origin, refund_no.to_owned()))
            .map(String::as_str)
    }

    pub(super) fn remember_refund(&mut self, origin: Origin, refund_no: &str, refund_id: &str) {
        self.refund_nos
            .insert((origin, refund_no.to_owned()), refund_id.to_owned());
    }
}
