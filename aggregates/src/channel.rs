//! The payment channels we offer, named as the gateway names them so no mapping table is needed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A gateway channel that shows the customer a QR code to scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Alipay, paid by scanning a QR code.
    AlipayQr,
    /// WeChat Pay, paid by scanning a QR code.
    WxPubQr,
}

impl Channel {
    pub fn all() -> &'static [Channel] {
        &[Channel::AlipayQr, Channel::WxPubQr]
    }

    /// The gateway's name for the channel, identical to the serde form.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Channel::AlipayQr => "alipay_qr",
            Channel::WxPubQr => "wx_pub_qr",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = ChannelError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Channel::all()
            .iter()
            .copied()
            .find(|channel| channel.as_str() == text)
            .ok_or_else(|| ChannelError::Unknown(text.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("unknown payment channel {0:?}")]
    Unknown(String),
}

impl ChannelError {
    /// A stable machine-readable code; clients branch on it, so never change an existing one.
    pub fn code(&self) -> &'static str {
        match self {
            ChannelError::Unknown(_) => "channel.unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_channel_round_trips_through_text_and_json() {
        for channel in Channel::all() {
            assert_eq!(channel.as_str().parse::<Channel>(), Ok(*channel));
            let json = serde_json::to_value(channel).unwrap();
            assert_eq!(json, serde_json::json!(channel.as_str()));
        }
    }

    #[test]
    fn channel_names_match_the_gateway() {
        assert_eq!(Channel::AlipayQr.to_string(), "alipay_qr");
        assert_eq!(Channel::WxPubQr.to_string(), "wx_pub_qr");
    }

    #[test]
    fn an_unknown_channel_is_refused_with_its_name() {
        assert_eq!(
            "bitcoin".parse::<Channel>(),
            Err(ChannelError::Unknown("bitcoin".to_owned()))
        );
    }
}
