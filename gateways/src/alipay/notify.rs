//! Alipay's asynchronous notifications: a form-encoded POST to our `notify_url`. The signature
//! is checked before any value is interpreted, the way the official SDKs check it: values
//! URL-decoded once, sorted by name, `sign` left out and `sign_type` left out too (trade
//! notifications, `rsaCheckV1`) or, failing that, kept in (other message types,
//! `rsaCheckV2`). Only then are the facts read, with every `trade_status` mapped explicitly.

use std::collections::BTreeMap;

use aggregates::{Currency, GatewayEventId, Money};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use rsa::RsaPublicKey;

use super::form;
use super::sign::{self, RSA2, SIGN, SIGN_TYPE};
use crate::port::{
    charge_id_for_order_no, ChargeState, GatewayEvent, WebhookRejection, WebhookReply,
    WebhookVerdict,
};
use crate::signature::{self, SignatureError};
use crate::yuan;

/// The exact reply that stops Alipay's resends; anything else (even `Success`) is a failure
/// and is resent up to 8 times over about 25 hours.
pub const ACKNOWLEDGEMENT: &str = "success";
/// What we answer when we did not record the notification.
pub const REFUSAL: &str = "fail";

/// The notification type of a trade status change (the only one the ledger acts on).
pub const TRADE_STATUS_SYNC: &str = "trade_status_sync";

/// Event types of notifications we keep for audit but do not act on.
pub mod event_types {
    /// The buyer scanned but has not paid yet.
    pub const WAIT_BUYER_PAY: &str = "alipay.wait_buyer_pay";
    /// A refund changed the trade. Its `refund_fee` is the trade's refunded total, not this
    /// refund's amount, so the refund's own outcome comes from `alipay.trade.refund` and
    /// `alipay.trade.fastpay.refund.query` instead.
    pub const TRADE_REFUNDED: &str = "alipay.trade_refunded";
    /// A trade that is not one of our orders, or for another app of the same merchant.
    pub const FOREIGN_TRADE: &str = "alipay.foreign_trade";
    /// A message type other than `trade_status_sync`.
    pub const OTHER_MESSAGE: &str = "alipay.other_message";
}

/// Alipay writes local times in China Standard Time, without an offset.
const CHINA_OFFSET_SECONDS: i64 = 8 * 3600;
const ALIPAY_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// The `trade_status` values, each handled on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeStatus {
    WaitBuyerPay,
    /// Paid; may still be refunded.
    Success,
    /// Paid and past the refund period: final.
    Finished,
    /// Closed unpaid (expired or closed by us), or refunded in full.
    Closed,
}

impl TradeStatus {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "WAIT_BUYER_PAY" => Some(Self::WaitBuyerPay),
            "TRADE_SUCCESS" => Some(Self::Success),
            "TRADE_FINISHED" => Some(Self::Finished),
            "TRADE_CLOSED" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// Verifies a notification body and returns its decoded parameters.
pub fn verify(
    public_key: &RsaPublicKey,
    body: &[u8],
) -> Result<BTreeMap<String, String>, WebhookRejection> {
    let params = form::parse(body).map_err(|error| match error {
        // Alipay sends GBK only to merchants who asked for it; we ask for UTF-8.
        form::FormError::NotUtf8 => WebhookRejection::Signature(SignatureError::Unsupported),
        other => WebhookRejection::Malformed(other.to_string()),
    })?;
    let signature_b64 = params
        .get(SIGN)
        .filter(|value| !value.is_empty())
        .ok_or(SignatureError::Missing)?;
    if let Some(charset) = params.get("charset") {
        if !charset.eq_ignore_ascii_case("utf-8") {
            return Err(SignatureError::Unsupported.into());
        }
    }
    let sign_type = params.get(SIGN_TYPE);
    if sign_type.is_some_and(|sign_type| sign_type != RSA2) {
        // RSA (SHA-1) is retired: never accept the weaker scheme on a downgraded message.
        return Err(SignatureError::Unsupported.into());
    }
    let without_sign_type = sign::notification_content(&params, false);
    match signature::verify(public_key, without_sign_type.as_bytes(), signature_b64) {
        Ok(()) => Ok(params),
        Err(SignatureError::Mismatch) if sign_type.is_some() => {
            let with_sign_type = sign::notification_content(&params, true);
            signature::verify(public_key, with_sign_type.as_bytes(), signature_b64)?;
            Ok(params)
        }
        Err(error) => Err(error.into()),
    }
}

/// Verifies a notification, then reduces it to the facts the ledger acts on. `app_id` is
/// ours: a genuine notification for another app is kept for audit, never acted on.
pub fn verify_and_parse(
    public_key: &RsaPublicKey,
    app_id: &str,
    body: &[u8],
) -> Result<GatewayEvent, WebhookRejection> {
    let params = verify(public_key, body)?;
    event_from_params(&params, app_id).map_err(WebhookRejection::Malformed)
}

/// Reads a verified notification.
pub fn event_from_params(
    params: &BTreeMap<String, String>,
    app_id: &str,
) -> Result<GatewayEvent, String> {
    let notify_id = required(params, "notify_id")?;
    // notify_id is stable across resends of one notification: the natural dedupe key.
    let event_id = GatewayEventId::parse(&format!("evt_alipay_{notify_id}"))
        .map_err(|error| format!("notify_id: {error}"))?;
    let other = |event_type: &str| GatewayEvent::Other {
        event_id: event_id.clone(),
        event_type: event_type.to_owned(),
    };
    if required(params, "notify_type")? != TRADE_STATUS_SYNC {
        return Ok(other(event_types::OTHER_MESSAGE));
    }
    let status_text = required(params, "trade_status")?;
    let status = TradeStatus::parse(status_text)
        .ok_or_else(|| format!("unknown trade_status `{status_text}`"))?;
    let out_trade_no = required(params, "out_trade_no")?;
    let Some(charge_id) = charge_id_for_order_no(out_trade_no) else {
        return Ok(other(event_types::FOREIGN_TRADE));
    };
    if params.get("app_id").map(String::as_str) != Some(app_id) {
        return Ok(other(event_types::FOREIGN_TRADE));
    }
    let refunded = ["refund_fee", "gmt_refund", "out_biz_no"]
        .iter()
        .any(|name| params.get(*name).is_some_and(|value| !value.is_empty()));
    if refunded {
        return Ok(other(event_types::TRADE_REFUNDED));
    }
    let amount = money(required(params, "total_amount")?)?;
    let paid = matches!(status, TradeStatus::Success | TradeStatus::Finished);
    let charge = ChargeState {
        charge_id,
        order_no: out_trade_no.to_owned(),
        amount,
        paid,
        time_paid: params
            .get("gmt_payment")
            .filter(|_| paid)
            .map(|text| china_time(text))
            .transpose()?,
        transaction_no: params.get("trade_no").filter(|no| !no.is_empty()).cloned(),
        failure_code: (status == TradeStatus::Closed).then(|| status_text.to_owned()),
        failure_message: None,
    };
    Ok(match status {
        TradeStatus::Success | TradeStatus::Finished => {
            GatewayEvent::ChargeSucceeded { event_id, charge }
        }
        TradeStatus::Closed => GatewayEvent::ChargeFailed { event_id, charge },
        TradeStatus::WaitBuyerPay => other(event_types::WAIT_BUYER_PAY),
    })
}

fn required<'a>(params: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, String> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| format!("`{name}` is missing"))
}

/// A yuan amount as Money in fen (Alipay's trades are in CNY).
pub fn money(yuan_text: &str) -> Result<Money, String> {
    let fen = yuan::fen_from_yuan(yuan_text).map_err(|error| error.to_string())?;
    Money::new(fen, Currency::Cny).map_err(|error| error.to_string())
}

/// Alipay's "2019-08-15 15:56:24", which is Beijing time.
pub fn china_time(text: &str) -> Result<DateTime<Utc>, String> {
    let naive = NaiveDateTime::parse_from_str(text, ALIPAY_TIME_FORMAT)
        .map_err(|error| format!("time `{text}`: {error}"))?;
    naive
        .checked_sub_signed(china_offset())
        .map(|utc| utc.and_utc())
        .ok_or_else(|| format!("time `{text}` is not representable"))
}

/// Formats a time the way Alipay's `timestamp` parameter wants it (Beijing time).
pub fn china_time_text(time: DateTime<Utc>) -> String {
    time.naive_utc()
        .checked_add_signed(china_offset())
        .unwrap_or(time.naive_utc())
        .format(ALIPAY_TIME_FORMAT)
        .to_string()
}

fn china_offset() -> TimeDelta {
    TimeDelta::seconds(CHINA_OFFSET_SECONDS)
}

/// The reply Alipay expects: exactly `success` once recorded, `fail` otherwise.
pub fn reply(verdict: WebhookVerdict<'_>) -> WebhookReply {
    let (status, body) = match verdict {
        WebhookVerdict::Recorded => (200, ACKNOWLEDGEMENT),
        WebhookVerdict::Refused(_) => (400, REFUSAL),
        WebhookVerdict::RetryLater => (503, REFUSAL),
    };
    WebhookReply {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::keys;

    const TRADE: &[u8] = include_bytes!("../../tests/fixtures/alipay/trade_status_sync.form");
    const TRADE_TAMPERED: &[u8] =
        include_bytes!("../../tests/fixtures/alipay/trade_status_sync_tampered.form");
    const TRADE_KEY: &str =
        include_str!("../../tests/fixtures/alipay/notify_public_key_v1_bare.txt");
    const SERVICE: &[u8] =
        include_bytes!("../../tests/fixtures/alipay/servicemarket_order_notify.form");
    const SERVICE_TAMPERED: &[u8] =
        include_bytes!("../../tests/fixtures/alipay/servicemarket_order_notify_tampered.form");
    const SERVICE_KEY: &str = include_str!("../../tests/fixtures/alipay/notify_public_key_v2.pem");

    fn key(text: &str) -> RsaPublicKey {
        keys::public_key_from_text(text).unwrap()
    }

    #[test]
    fn the_published_trade_notification_verifies_without_its_sign_type() {
        let params = verify(&key(TRADE_KEY), TRADE).unwrap();
        assert_eq!(params["total_amount"], "0.10");
        assert_eq!(params["subject"], "语雀空间 500人规模");
        assert_eq!(money(&params["total_amount"]).unwrap().amount_minor(), 10);
    }

    #[test]
    fn the_published_message_signed_with_its_sign_type_verifies() {
        let params = verify(&key(SERVICE_KEY), SERVICE).unwrap();
        assert_eq!(params["notify_type"], "servicemarket_order_notify");
        let event = event_from_params(&params, "2017122801303261").unwrap();
        assert_eq!(event.event_type(), event_types::OTHER_MESSAGE);
        assert_eq!(
            event.event_id().as_str(),
            "evt_alipay_2019030800222102023008121054923345"
        );
    }

    #[test]
    fn one_byte_tampered_twins_do_not_verify() {
        for (body, key_text) in [(TRADE_TAMPERED, TRADE_KEY), (SERVICE_TAMPERED, SERVICE_KEY)] {
            assert_eq!(
                verify(&key(key_text), body),
                Err(WebhookRejection::Signature(SignatureError::Mismatch))
            );
        }
        // The right body under the other published key.
        assert_eq!(
            verify(&key(SERVICE_KEY), TRADE),
            Err(WebhookRejection::Signature(SignatureError::Mismatch))
        );
    }

    #[test]
    fn a_published_trade_for_a_foreign_order_number_is_kept_not_acted_on() {
        let event = verify_and_parse(&key(TRADE_KEY), "2019073166072302", TRADE).unwrap();
        assert_eq!(event.event_type(), event_types::FOREIGN_TRADE);
        assert_eq!(
            event.event_id().as_str(),
            "evt_alipay_2019081500222155624068450559358070"
        );
    }

    /// A notification signed with the test gateway key, as the sandbox sends them.
    fn signed(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut params: BTreeMap<String, String> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let content = sign::notification_content(&params, false);
        params.insert(
            SIGN.to_owned(),
            signature::sign(crate::test_keys::gateway(), content.as_bytes()),
        );
        form::encode(&params).into_bytes()
    }

    fn trade(status: &str, extra: &[(&'static str, &'static str)]) -> Vec<u8> {
        let mut pairs = vec![
            ("notify_id", "2026113000222153759068450559621257"),
            ("notify_type", "trade_status_sync"),
            ("notify_time", "2026-11-30 21:00:01"),
            ("app_id", "2021000000000001"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("version", "1.0"),
            ("trade_status", status),
            ("out_trade_no", "0123456789abcdef0123456789abcdef"),
            ("trade_no", "2026113022001468450509133591"),
            ("total_amount", "88.88"),
            ("gmt_payment", "2026-11-30 21:00:00"),
        ];
        pairs.extend_from_slice(extra);
        signed(&pairs)
    }

    fn parsed(body: &[u8]) -> GatewayEvent {
        verify_and_parse(
            &crate::test_keys::gateway().to_public_key(),
            "2021000000000001",
            body,
        )
        .unwrap()
    }

    #[test]
    fn every_trade_status_maps_explicitly() {
        for status in ["TRADE_SUCCESS", "TRADE_FINISHED"] {
            let GatewayEvent::ChargeSucceeded { charge, .. } = parsed(&trade(status, &[])) else {
                panic!("{status}");
            };
            assert!(charge.paid);
            assert_eq!(charge.amount.amount_minor(), 8888);
            assert_eq!(
                charge.charge_id.as_str(),
                "ch_0123456789abcdef0123456789abcdef"
            );
            assert_eq!(
                charge.time_paid.unwrap().to_rfc3339(),
                "2026-11-30T13:00:00+00:00"
            );
            assert_eq!(
                charge.transaction_no.as_deref(),
                Some("2026113022001468450509133591")
            );
        }
        let GatewayEvent::ChargeFailed { charge, .. } = parsed(&trade("TRADE_CLOSED", &[])) else {
            panic!("closed");
        };
        assert!(!charge.paid);
        assert_eq!(charge.time_paid, None);
        assert_eq!(charge.failure_code.as_deref(), Some("TRADE_CLOSED"));
        assert_eq!(
            parsed(&trade("WAIT_BUYER_PAY", &[])).event_type(),
            event_types::WAIT_BUYER_PAY
        );
        assert!(matches!(
            verify_and_parse(
                &crate::test_keys::gateway().to_public_key(),
                "2021000000000001",
                &trade("TRADE_PENDING", &[])
            ),
            Err(WebhookRejection::Malformed(_))
        ));
    }

    #[test]
    fn refund_changes_are_kept_for_audit_only() {
        let body = trade(
            "TRADE_CLOSED",
            &[("refund_fee", "88.88"), ("out_biz_no", "r1")],
        );
        assert_eq!(parsed(&body).event_type(), event_types::TRADE_REFUNDED);
    }

    #[test]
    fn another_apps_trade_is_foreign() {
        let event = verify_and_parse(
            &crate::test_keys::gateway().to_public_key(),
            "2021000000000999",
            &trade("TRADE_SUCCESS", &[]),
        )
        .unwrap();
        assert_eq!(event.event_type(), event_types::FOREIGN_TRADE);
    }

    #[test]
    fn weaker_schemes_and_other_charsets_are_refused() {
        let public = crate::test_keys::gateway().to_public_key();
        let unsupported = Err(WebhookRejection::Signature(SignatureError::Unsupported));
        for extra in [("sign_type", "RSA"), ("charset", "gbk")] {
            let mut params = form::parse(&trade("TRADE_SUCCESS", &[])).unwrap();
            params.insert(extra.0.to_owned(), extra.1.to_owned());
            assert_eq!(
                verify(&public, form::encode(&params).as_bytes()),
                unsupported
            );
        }
        assert_eq!(verify(&public, b"a=%D3%EF&sign=x"), unsupported);
        assert_eq!(
            verify(&public, b"notify_id=1"),
            Err(WebhookRejection::Signature(SignatureError::Missing))
        );
        assert!(matches!(
            verify(&public, b"sign=a&sign=b"),
            Err(WebhookRejection::Malformed(_))
        ));
    }

    #[test]
    fn the_acknowledgement_is_exactly_success() {
        let reply = reply(WebhookVerdict::Recorded);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, b"success");
        let refusal = super::reply(WebhookVerdict::RetryLater);
        assert_ne!(refusal.body, b"success");
        assert_ne!(refusal.status, 200);
    }
}
