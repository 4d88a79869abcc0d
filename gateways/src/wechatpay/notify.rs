//! WeChat Pay callbacks. Refused before a byte of the body is read unless: the key named by
//! `Wechatpay-Serial` is one we hold, the signed timestamp is within five minutes of our clock,
//! the signature over `timestamp\nnonce\nbody\n` checks out, and the nonce was not seen
//! before. Only then is `resource` opened with the APIv3 key and its facts read.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

use aggregates::{Currency, GatewayEventId, Money};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::platform::PlatformKeys;
use super::resource::{self, EncryptedResource};
use super::sign::{self, NONCE_HEADER, SERIAL_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::port::{
    charge_id_for_order_no, gateway_refund_id_for_refund_no, refund_id_from_refund_no, ChargeState,
    GatewayEvent, RefundFacts, WebhookRejection, WebhookReply, WebhookVerdict,
};
use crate::signature::{self, SignatureError};
use crate::WebhookHeaders;

/// Signed timestamps this far from our clock or further are refused (the protocol's 5 minutes).
pub const TIMESTAMP_WINDOW_SECONDS: i64 = 300;
/// The most nonces remembered at once; older ones leave first. Nonces whose timestamps left
/// the window are forgotten anyway, since the window alone refuses a replay of them.
pub const NONCES_MAX: usize = 100_000;

/// The event types we act on.
pub mod event_types {
    pub const TRANSACTION_SUCCESS: &str = "TRANSACTION.SUCCESS";
    pub const REFUND_SUCCESS: &str = "REFUND.SUCCESS";
    pub const REFUND_ABNORMAL: &str = "REFUND.ABNORMAL";
    pub const REFUND_CLOSED: &str = "REFUND.CLOSED";
    /// A genuine callback for an order that is not ours or another merchant: kept, not acted on.
    pub const FOREIGN: &str = "wechatpay.foreign";
}

/// The nonces of callbacks already admitted, bounded in memory.
#[derive(Debug)]
pub struct NonceCache {
    capacity: usize,
    state: Mutex<NonceState>,
}

#[derive(Debug, Default)]
struct NonceState {
    seen: HashSet<String>,
    /// Arrival order, with each nonce's signed timestamp.
    order: VecDeque<(i64, String)>,
}

impl Default for NonceCache {
    fn default() -> Self {
        Self::new(NONCES_MAX)
    }
}

impl NonceCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::new(NonceState::default()),
        }
    }

    /// Remembers `nonce` and says whether it is new. Call it only for verified signatures,
    /// so a forger cannot flood the cache.
    pub fn admit(&self, nonce: &str, timestamp: i64, now: i64) -> bool {
        // A poisoned lock only means another thread panicked mid-update; the set stays usable.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let oldest_relevant = now.saturating_sub(TIMESTAMP_WINDOW_SECONDS);
        while let Some((timestamp, _)) = state.order.front() {
            if *timestamp >= oldest_relevant && state.order.len() < self.capacity {
                break;
            }
            if let Some((_, forgotten)) = state.order.pop_front() {
                state.seen.remove(&forgotten);
            }
        }
        if state.seen.contains(nonce) {
            return false;
        }
        state.seen.insert(nonce.to_owned());
        state.order.push_back((timestamp, nonce.to_owned()));
        true
    }

    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .order
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The signed headers of a verified answer or callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub timestamp: i64,
    pub nonce: String,
}

/// Exactly one value of `name` (the same value twice counts as one), as visible ASCII.
fn single<'a>(headers: &'a WebhookHeaders, name: &'a str) -> Result<&'a str, SignatureError> {
    let mut values = headers.get_all(name);
    let first = values.next().ok_or(SignatureError::Missing)?;
    if values.any(|other| other != first) {
        return Err(SignatureError::Mismatch);
    }
    std::str::from_utf8(first)
        .ok()
        .map(str::trim)
        .filter(|text| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_graphic()))
        .ok_or(SignatureError::Mismatch)
}

/// Verifies the platform's signature over an answer or callback: known key, fresh timestamp,
/// matching signature. Replay protection is the caller's (callbacks only).
pub fn verify_signature(
    keys: &PlatformKeys,
    headers: &WebhookHeaders,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Signed, SignatureError> {
    check_signature(keys, headers, body, Some(now))
}

/// Verifies the platform's signature over an answer or callback kept earlier: known key,
/// matching signature. The timestamp window does not apply: it bounds when a delivery may be
/// accepted, and a kept one was accepted when it arrived; the signature still vouches for
/// every byte.
pub fn verify_kept_signature(
    keys: &PlatformKeys,
    headers: &WebhookHeaders,
    body: &[u8],
) -> Result<Signed, SignatureError> {
    check_signature(keys, headers, body, None)
}

/// The signature check, with the timestamp window around `now` when given.
fn check_signature(
    keys: &PlatformKeys,
    headers: &WebhookHeaders,
    body: &[u8],
    now: Option<DateTime<Utc>>,
) -> Result<Signed, SignatureError> {
    let signature_b64 = single(headers, SIGNATURE_HEADER)?;
    let serial = single(headers, SERIAL_HEADER)?;
    let timestamp_text = single(headers, TIMESTAMP_HEADER)?;
    let nonce = single(headers, NONCE_HEADER)?;
    if let Ok(signature_type) = single(headers, sign::SIGNATURE_TYPE_HEADER) {
        if signature_type != sign::SCHEMA {
            return Err(SignatureError::Unsupported);
        }
    }
    let key = keys.get(serial).ok_or(SignatureError::UnknownKey)?;
    let timestamp: i64 = timestamp_text.parse().map_err(|_| SignatureError::Stale)?;
    if now.is_some_and(|now| {
        now.timestamp().abs_diff(timestamp) >= TIMESTAMP_WINDOW_SECONDS.unsigned_abs()
    }) {
        return Err(SignatureError::Stale);
    }
    let message = sign::platform_message(timestamp_text, nonce, body);
    signature::verify(key, &message, signature_b64)?;
    Ok(Signed {
        timestamp,
        nonce: nonce.to_owned(),
    })
}

/// A callback's envelope.
#[derive(Debug, Clone, Deserialize)]
pub struct Notification {
    pub id: String,
    #[serde(default)]
    pub create_time: String,
    pub event_type: String,
    #[serde(default)]
    pub resource_type: String,
    #[serde(default)]
    pub summary: String,
    pub resource: EncryptedResource,
}

/// Verifies a callback (signature, window, replay) and opens its resource.
pub fn verify_and_open(
    keys: &PlatformKeys,
    api_v3_key: &[u8],
    now: DateTime<Utc>,
    nonces: &NonceCache,
    headers: &WebhookHeaders,
    body: &[u8],
) -> Result<(Notification, Vec<u8>), WebhookRejection> {
    let signed = verify_signature(keys, headers, body, now)?;
    if !nonces.admit(&signed.nonce, signed.timestamp, now.timestamp()) {
        return Err(SignatureError::Replayed.into());
    }
    let notification: Notification = serde_json::from_slice(body)
        .map_err(|error| WebhookRejection::Malformed(format!("not a callback: {error}")))?;
    let plaintext = resource::open(api_v3_key, &notification.resource)?;
    Ok((notification, plaintext))
}

/// Verifies a callback, then reduces it to the facts the ledger acts on. `mchid` is ours.
pub fn verify_and_parse(
    keys: &PlatformKeys,
    api_v3_key: &[u8],
    mchid: &str,
    now: DateTime<Utc>,
    nonces: &NonceCache,
    headers: &WebhookHeaders,
    body: &[u8],
) -> Result<GatewayEvent, WebhookRejection> {
    let (notification, plaintext) = verify_and_open(keys, api_v3_key, now, nonces, headers, body)?;
    event_from_callback(&notification, &plaintext, mchid).map_err(WebhookRejection::Malformed)
}

/// What a kept callback says when it is checked again after the fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeptCallback {
    /// Opened with the APIv3 key: the facts it carried.
    Opened(GatewayEvent),
    /// Genuine, but without the APIv3 key its resource stays sealed: only the envelope's
    /// event id can be read.
    Sealed { event_id: GatewayEventId },
}

/// Checks a kept callback again: the signature with the platform key its serial names (no
/// timestamp window, no replay check: it was admitted once), then, given the APIv3 key, its
/// facts. It is read with the merchant id it names; ours was checked when it arrived.
pub fn verify_kept(
    keys: &PlatformKeys,
    api_v3_key: Option<&[u8]>,
    headers: &WebhookHeaders,
    body: &[u8],
) -> Result<KeptCallback, WebhookRejection> {
    verify_kept_signature(keys, headers, body)?;
    let notification: Notification = serde_json::from_slice(body)
        .map_err(|error| WebhookRejection::Malformed(format!("not a callback: {error}")))?;
    let Some(api_v3_key) = api_v3_key else {
        let event_id = event_id(&notification.id).map_err(WebhookRejection::Malformed)?;
        return Ok(KeptCallback::Sealed { event_id });
    };
    let plaintext = resource::open(api_v3_key, &notification.resource)?;
    let named = serde_json::from_slice::<NamedMerchant>(&plaintext)
        .map(|named| named.mchid)
        .unwrap_or_default();
    event_from_callback(&notification, &plaintext, &named)
        .map(KeptCallback::Opened)
        .map_err(WebhookRejection::Malformed)
}

/// The merchant id an opened resource names.
#[derive(Debug, Deserialize)]
struct NamedMerchant {
    #[serde(default)]
    mchid: String,
}

/// A paid transaction as the callback (and the query API) describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct Transaction {
    #[serde(default)]
    pub mchid: String,
    pub out_trade_no: String,
    #[serde(default)]
    pub transaction_id: Option<String>,
    pub trade_state: String,
    #[serde(default)]
    pub trade_state_desc: Option<String>,
    #[serde(default)]
    pub success_time: Option<String>,
    #[serde(default)]
    pub amount: Option<TransactionAmount>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TransactionAmount {
    pub total: i64,
    #[serde(default)]
    pub currency: Option<String>,
}

/// A refund as its callback describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct RefundNotice {
    #[serde(default)]
    pub mchid: String,
    pub out_trade_no: String,
    pub out_refund_no: String,
    #[serde(default)]
    pub refund_status: String,
    #[serde(default)]
    pub success_time: Option<String>,
    pub amount: RefundNoticeAmount,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RefundNoticeAmount {
    pub refund: i64,
}

/// Reads an opened callback.
pub fn event_from_callback(
    notification: &Notification,
    plaintext: &[u8],
    mchid: &str,
) -> Result<GatewayEvent, String> {
    let event_id = event_id(&notification.id)?;
    let other = |event_type: &str| GatewayEvent::Other {
        event_id: event_id.clone(),
        event_type: event_type.to_owned(),
    };
    match notification.event_type.as_str() {
        event_types::TRANSACTION_SUCCESS => {
            let transaction: Transaction = serde_json::from_slice(plaintext)
                .map_err(|error| format!("not a transaction: {error}"))?;
            if transaction.mchid != mchid {
                return Ok(other(event_types::FOREIGN));
            }
            match charge_state(&transaction)? {
                Some(charge) if charge.paid => {
                    Ok(GatewayEvent::ChargeSucceeded { event_id, charge })
                }
                Some(_) => Err(format!(
                    "TRANSACTION.SUCCESS with trade_state `{}`",
                    transaction.trade_state
                )),
                None => Ok(other(event_types::FOREIGN)),
            }
        }
        event_types::REFUND_SUCCESS | event_types::REFUND_ABNORMAL | event_types::REFUND_CLOSED => {
            let refund: RefundNotice = serde_json::from_slice(plaintext)
                .map_err(|error| format!("not a refund: {error}"))?;
            if refund.mchid != mchid {
                return Ok(other(event_types::FOREIGN));
            }
            let Some(facts) = refund_facts(&refund)? else {
                return Ok(other(event_types::FOREIGN));
            };
            Ok(if notification.event_type == event_types::REFUND_SUCCESS {
                GatewayEvent::RefundSucceeded {
                    event_id,
                    refund: facts,
                }
            } else {
                GatewayEvent::RefundFailed {
                    event_id,
                    refund: facts,
                }
            })
        }
        // Kept under its own name for audit.
        other_type => Ok(other(other_type)),
    }
}

/// Our event id for a callback id ("EV-2018022511223320873", or a UUID): the characters ids
/// may not hold become `_`.
fn event_id(id: &str) -> Result<GatewayEventId, String> {
    let cleaned: String = id
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() {
                character
            } else {
                '_'
            }
        })
        .collect();
    GatewayEventId::parse(&format!("evt_wx_{cleaned}")).map_err(|error| format!("id: {error}"))
}

/// A transaction as the ledger sees it; None when it is not one of our orders.
pub fn charge_state(transaction: &Transaction) -> Result<Option<ChargeState>, String> {
    let Some(charge_id) = charge_id_for_order_no(&transaction.out_trade_no) else {
        return Ok(None);
    };
    // REFUND: paid, then (partly) refunded; still a payment that happened.
    let paid = matches!(transaction.trade_state.as_str(), "SUCCESS" | "REFUND");
    let amount = transaction
        .amount
        .as_ref()
        .ok_or_else(|| "the transaction has no amount".to_owned())?;
    if amount
        .currency
        .as_deref()
        .is_some_and(|currency| currency != "CNY")
    {
        return Err(format!("currency {:?} is not CNY", amount.currency));
    }
    let money = Money::new(amount.total, Currency::Cny).map_err(|error| error.to_string())?;
    let failed = matches!(
        transaction.trade_state.as_str(),
        "CLOSED" | "REVOKED" | "PAYERROR"
    );
    Ok(Some(ChargeState {
        charge_id,
        order_no: transaction.out_trade_no.clone(),
        amount: money,
        paid,
        time_paid: transaction
            .success_time
            .as_deref()
            .filter(|_| paid)
            .map(rfc3339)
            .transpose()?,
        transaction_no: transaction
            .transaction_id
            .clone()
            .filter(|id| !id.is_empty()),
        failure_code: failed.then(|| transaction.trade_state.clone()),
        failure_message: transaction
            .trade_state_desc
            .clone()
            .filter(|_| failed)
            .filter(|text| !text.is_empty()),
    }))
}

fn refund_facts(refund: &RefundNotice) -> Result<Option<RefundFacts>, String> {
    let Some(charge_id) = charge_id_for_order_no(&refund.out_trade_no) else {
        return Ok(None);
    };
    let Some(gateway_refund_id) = gateway_refund_id_for_refund_no(&refund.out_refund_no) else {
        return Ok(None);
    };
    let succeeded = refund.refund_status == "SUCCESS";
    Ok(Some(RefundFacts {
        gateway_refund_id,
        charge_id,
        charge_order_no: Some(refund.out_trade_no.clone()),
        refund_id: refund_id_from_refund_no(&refund.out_refund_no),
        amount: Money::new(refund.amount.refund, Currency::Cny)
            .map_err(|error| error.to_string())?,
        succeeded_at: refund
            .success_time
            .as_deref()
            .filter(|_| succeeded)
            .map(rfc3339)
            .transpose()?,
        failure_code: (!succeeded)
            .then(|| refund.refund_status.clone())
            .filter(|code| !code.is_empty()),
        failure_message: None,
    }))
}

fn rfc3339(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| format!("time `{text}`: {error}"))
}

/// WeChat Pay stops resending on 200 or 204; anything else carries
/// `{"code":"FAIL","message":...}`.
pub fn reply(verdict: WebhookVerdict<'_>) -> WebhookReply {
    let (status, message) = match verdict {
        WebhookVerdict::Recorded => {
            return WebhookReply {
                status: 204,
                content_type: "application/json",
                body: Vec::new(),
            }
        }
        WebhookVerdict::Refused(rejection @ WebhookRejection::Signature(_)) => {
            (401, rejection.code())
        }
        WebhookVerdict::Refused(rejection @ WebhookRejection::Malformed(_)) => {
            (400, rejection.code())
        }
        WebhookVerdict::RetryLater => (503, "webhook.retry_later"),
    };
    WebhookReply {
        status,
        content_type: "application/json",
        body: serde_json::json!({ "code": "FAIL", "message": message })
            .to_string()
            .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::keys;
    use crate::wechatpay::resource::ApiV3Key;

    const BODY: &[u8] = include_bytes!("../../tests/fixtures/wechatpay/body.json");
    const HEADERS: &str = include_str!("../../tests/fixtures/wechatpay/headers.txt");
    const CERTIFICATE: &str =
        include_str!("../../tests/fixtures/wechatpay/platform_certificate.pem");
    const API_V3_KEY: &str = include_str!("../../tests/fixtures/wechatpay/apiv3_key.txt");
    const PLAINTEXT: &[u8] = include_bytes!("../../tests/fixtures/wechatpay/plaintext.json");
    /// The moment the published vector was signed (its test pins the clock there).
    const SIGNED_AT: i64 = 1_624_523_846;

    fn published_keys() -> PlatformKeys {
        let material = keys::public_key_material_from_text(CERTIFICATE).unwrap();
        PlatformKeys::new().with_material(None, material).unwrap()
    }

    fn published_headers() -> WebhookHeaders {
        HEADERS
            .lines()
            .filter_map(|line| line.split_once(": "))
            .collect()
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    fn open(
        headers: &WebhookHeaders,
        body: &[u8],
        now: i64,
        nonces: &NonceCache,
    ) -> Result<(Notification, Vec<u8>), WebhookRejection> {
        verify_and_open(
            &published_keys(),
            API_V3_KEY.as_bytes(),
            at(now),
            nonces,
            headers,
            body,
        )
    }

    #[test]
    fn the_published_callback_verifies_and_opens_to_the_published_plaintext() {
        let (notification, plaintext) = open(
            &published_headers(),
            BODY,
            SIGNED_AT,
            &NonceCache::default(),
        )
        .unwrap();
        assert_eq!(plaintext, PLAINTEXT);
        assert_eq!(notification.event_type, "PAYSCORE.USER_OPEN_SERVICE");
        let event = event_from_callback(&notification, &plaintext, "1234567890").unwrap();
        assert_eq!(event.event_type(), "PAYSCORE.USER_OPEN_SERVICE");
        assert_eq!(
            event.event_id().as_str(),
            "evt_wx_3119dfba_e649_5eec_ab1e_3412bc4d2e17"
        );
    }

    #[test]
    fn a_kept_callback_verifies_again_years_after_it_was_signed() {
        let headers = published_headers();
        // Long past the window: a delivery now would be stale.
        let late = at(SIGNED_AT + 3 * 365 * 86_400);
        assert_eq!(
            verify_signature(&published_keys(), &headers, BODY, late),
            Err(SignatureError::Stale)
        );
        let opened = verify_kept(
            &published_keys(),
            Some(API_V3_KEY.as_bytes()),
            &headers,
            BODY,
        )
        .unwrap();
        let KeptCallback::Opened(event) = opened else {
            panic!("opened with the key: {opened:?}");
        };
        assert_eq!(event.event_type(), "PAYSCORE.USER_OPEN_SERVICE");
        // Without the APIv3 key only the envelope can be read, and it still must be genuine.
        assert_eq!(
            verify_kept(&published_keys(), None, &headers, BODY).unwrap(),
            KeptCallback::Sealed {
                event_id: event.event_id().clone()
            }
        );
        let mut tampered = BODY.to_vec();
        let last = tampered.len() - 2;
        tampered[last] ^= 1;
        assert!(matches!(
            verify_kept(&published_keys(), None, &headers, &tampered),
            Err(WebhookRejection::Signature(SignatureError::Mismatch))
        ));
    }

    #[test]
    fn its_one_byte_tampered_twin_does_not_verify() {
        let tampered =
            String::from_utf8(BODY.to_vec())
                .unwrap()
                .replacen("\"payscore\"", "\"payscorf\"", 1);
        assert_eq!(tampered.len(), BODY.len());
        assert_eq!(
            open(
                &published_headers(),
                tampered.as_bytes(),
                SIGNED_AT,
                &NonceCache::default()
            )
            .unwrap_err(),
            WebhookRejection::Signature(SignatureError::Mismatch)
        );
        let mut with_newline = BODY.to_vec();
        with_newline.push(b'\n');
        assert!(open(
            &published_headers(),
            &with_newline,
            SIGNED_AT,
            &NonceCache::default()
        )
        .is_err());
    }

    #[test]
    fn the_timestamp_window_is_under_five_minutes_either_way() {
        for now in [SIGNED_AT - 299, SIGNED_AT + 299] {
            assert!(open(&published_headers(), BODY, now, &NonceCache::default()).is_ok());
        }
        for now in [SIGNED_AT - 300, SIGNED_AT + 300, 0] {
            assert_eq!(
                open(&published_headers(), BODY, now, &NonceCache::default()).unwrap_err(),
                WebhookRejection::Signature(SignatureError::Stale)
            );
        }
    }

    #[test]
    fn a_replayed_nonce_is_refused() {
        let nonces = NonceCache::default();
        assert!(open(&published_headers(), BODY, SIGNED_AT, &nonces).is_ok());
        assert_eq!(
            open(&published_headers(), BODY, SIGNED_AT + 10, &nonces).unwrap_err(),
            WebhookRejection::Signature(SignatureError::Replayed)
        );
    }

    #[test]
    fn an_unknown_serial_or_missing_header_is_refused() {
        let mut headers = WebhookHeaders::new();
        for line in HEADERS.lines() {
            let (name, value) = line.split_once(": ").unwrap();
            let value = if name == "Wechatpay-Serial" {
                "5157F09EFDC096DE15EBE81A47057A72"
            } else {
                value
            };
            headers.push(name, value);
        }
        assert_eq!(
            open(&headers, BODY, SIGNED_AT, &NonceCache::default()).unwrap_err(),
            WebhookRejection::Signature(SignatureError::UnknownKey)
        );
        let without_signature: WebhookHeaders = HEADERS
            .lines()
            .filter_map(|line| line.split_once(": "))
            .filter(|(name, _)| *name != "Wechatpay-Signature")
            .collect();
        assert_eq!(
            open(&without_signature, BODY, SIGNED_AT, &NonceCache::default()).unwrap_err(),
            WebhookRejection::Signature(SignatureError::Missing)
        );
        let mut doubled = published_headers();
        doubled.push("Wechatpay-Signature", "b3RoZXI=");
        assert_eq!(
            open(&doubled, BODY, SIGNED_AT, &NonceCache::default()).unwrap_err(),
            WebhookRejection::Signature(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_nonce_cache_stays_bounded_and_forgets_what_the_window_refuses() {
        let nonces = NonceCache::new(3);
        for (index, nonce) in ["a", "b", "c", "d"].iter().enumerate() {
            assert!(nonces.admit(nonce, 1000 + i64::try_from(index).unwrap(), 1000));
        }
        assert_eq!(nonces.len(), 3);
        assert!(nonces.admit("a", 1000, 1000), "the oldest left first");
        assert!(!nonces.admit("d", 1003, 1003));
        assert!(nonces.admit("x", 5000, 5000));
        assert_eq!(nonces.len(), 1, "stale nonces are dropped");
    }

    /// Generated, not published: a payment callback as WeChat Pay sends it, sealed with a
    /// 32-byte key and signed with the test platform key.
    pub(crate) fn signed_callback(
        event_type: &str,
        plaintext: &serde_json::Value,
        timestamp: i64,
        nonce: &str,
        key: &ApiV3Key,
    ) -> (WebhookHeaders, Vec<u8>) {
        let resource = resource::seal(
            key,
            "fELNiDqBpqA9",
            "transaction",
            "transaction",
            plaintext.to_string().as_bytes(),
        )
        .unwrap();
        let body = serde_json::json!({
            "id": "EV-2018022511223320873",
            "create_time": "2026-11-30T21:00:00+08:00",
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "支付成功",
            "resource": resource,
        })
        .to_string()
        .into_bytes();
        let message = sign::platform_message(&timestamp.to_string(), nonce, &body);
        let signature = signature::sign(crate::test_keys::gateway(), &message);
        let headers = [
            ("Wechatpay-Timestamp", timestamp.to_string()),
            ("Wechatpay-Nonce", nonce.to_owned()),
            (
                "Wechatpay-Serial",
                "5157F09EFDC096DE15EBE81A47057A72".to_owned(),
            ),
            ("Wechatpay-Signature", signature),
            ("Wechatpay-Signature-Type", sign::SCHEMA.to_owned()),
        ]
        .into_iter()
        .collect();
        (headers, body)
    }

    fn generated_keys() -> PlatformKeys {
        PlatformKeys::new().with(
            "5157F09EFDC096DE15EBE81A47057A72",
            crate::test_keys::gateway().to_public_key(),
        )
    }

    #[test]
    fn a_payment_callback_becomes_a_charge_success() {
        let key = ApiV3Key::parse("0123456789abcdef0123456789abcdef").unwrap();
        let plaintext = serde_json::json!({
            "mchid": "1900009191",
            "appid": "wxd678efh567hg6787",
            "out_trade_no": "0123456789abcdef0123456789abcdef",
            "transaction_id": "4200000848202101120290526543",
            "trade_type": "NATIVE",
            "trade_state": "SUCCESS",
            "trade_state_desc": "支付成功",
            "success_time": "2026-11-30T21:00:00+08:00",
            "amount": { "total": 8888, "payer_total": 8888, "currency": "CNY", "payer_currency": "CNY" }
        });
        let (headers, body) =
            signed_callback("TRANSACTION.SUCCESS", &plaintext, 1_800_000_000, "n1", &key);
        let event = verify_and_parse(
            &generated_keys(),
            key.as_bytes(),
            "1900009191",
            at(1_800_000_000),
            &NonceCache::default(),
            &headers,
            &body,
        )
        .unwrap();
        let GatewayEvent::ChargeSucceeded { event_id, charge } = event else {
            panic!("{event:?}");
        };
        assert_eq!(event_id.as_str(), "evt_wx_EV_2018022511223320873");
        assert_eq!(charge.amount.amount_minor(), 8888);
        assert_eq!(
            charge.time_paid.unwrap().to_rfc3339(),
            "2026-11-30T13:00:00+00:00"
        );
        let foreign = verify_and_parse(
            &generated_keys(),
            key.as_bytes(),
            "1900000000",
            at(1_800_000_000),
            &NonceCache::default(),
            &headers,
            &body,
        )
        .unwrap();
        assert_eq!(foreign.event_type(), event_types::FOREIGN);
    }

    #[test]
    fn a_refund_callback_carries_our_refund_id() {
        let key = ApiV3Key::parse("0123456789abcdef0123456789abcdef").unwrap();
        let plaintext = serde_json::json!({
            "mchid": "1900009191",
            "out_trade_no": "0123456789abcdef0123456789abcdef",
            "transaction_id": "4200000848202101120290526543",
            "out_refund_no": "fedcba9876543210fedcba9876543210",
            "refund_id": "50000000382019052709732678859",
            "refund_status": "ABNORMAL",
            "amount": { "total": 8888, "refund": 100, "payer_total": 8888, "payer_refund": 100 }
        });
        let (headers, body) =
            signed_callback("REFUND.ABNORMAL", &plaintext, 1_800_000_000, "n2", &key);
        let event = verify_and_parse(
            &generated_keys(),
            key.as_bytes(),
            "1900009191",
            at(1_800_000_000),
            &NonceCache::default(),
            &headers,
            &body,
        )
        .unwrap();
        let GatewayEvent::RefundFailed { refund, .. } = event else {
            panic!("{event:?}");
        };
        assert_eq!(refund.amount.amount_minor(), 100);
        assert!(refund.refund_id.is_some());
        assert_eq!(refund.failure_code.as_deref(), Some("ABNORMAL"));
    }

    #[test]
    fn replies_follow_the_protocol() {
        assert_eq!(reply(WebhookVerdict::Recorded).status, 204);
        let refused = WebhookRejection::Signature(SignatureError::Stale);
        let answer = reply(WebhookVerdict::Refused(&refused));
        assert_eq!(answer.status, 401);
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["code"], "FAIL");
        assert_eq!(body["message"], "webhook.stale");
        assert_eq!(reply(WebhookVerdict::RetryLater).status, 503);
    }
}
