//! Ping++ webhooks: the signature is checked over the exact bytes received before a single byte
//! is parsed, so nothing an attacker writes is ever interpreted; only then is the event reduced
//! to the facts the ledger acts on.

use aggregates::{ChargeId, Currency, GatewayEventId, GatewayRefundId, Money, RefundId};
use chrono::{DateTime, Utc};
use rsa::RsaPublicKey;

use super::signature::{self, SignatureError};
use super::wire::{self, event_types, WEBHOOK_SIGNATURE_HEADER};
use crate::port::{
    ChargeState, GatewayEvent, RefundFacts, WebhookRejection, WebhookReply, WebhookVerdict,
};
use crate::WebhookHeaders;

/// Ping++ refund objects carry no currency: a refund is in its charge's currency, and Ping++
/// charges in CNY only.
const REFUND_CURRENCY: Currency = Currency::Cny;

/// The metadata key under which we send our refund id with every refund we ask for.
pub const REFUND_ID_METADATA_KEY: &str = "refund_id";

/// How far ahead of our clock a gateway's `time_paid` or `time_succeed` may be before we stop
/// believing it: clocks drift, but not by days.
pub const GATEWAY_CLOCK_SKEW_SECONDS_MAX: i64 = 5 * 60;

/// What replaces U+0000 in the gateway's text fields: PostgreSQL text and jsonb cannot hold
/// it, so a NUL kept as is would fail the append later, long after the webhook was accepted.
const NUL_REPLACEMENT: &str = "\u{fffd}";

/// Verifies a webhook's signature over `body` exactly as received, then reads the event.
///
/// A missing, undecodable, repeated or wrong signature is refused before the body is parsed; a
/// correctly signed body that is not an event we can read is `Malformed`.
pub fn verify_and_parse(
    public_key: &RsaPublicKey,
    headers: &WebhookHeaders,
    body: &[u8],
) -> Result<GatewayEvent, WebhookRejection> {
    verify_and_parse_at(public_key, headers, body, Utc::now())
}

/// `verify_and_parse` with the clock passed in: `now` bounds the gateway's timestamps.
///
/// Besides the signature, this is where a signed event that could not be true is stopped: a
/// `charge.succeeded` whose charge is not paid is `Malformed` (it must never confirm a payment);
/// a payment or refund time further in the future than [`GATEWAY_CLOCK_SKEW_SECONDS_MAX`] is
/// clamped to `now` (the money did move; the raw body, kept with the event, still holds what the
/// gateway sent, and a warning names it); U+0000 in any text field becomes U+FFFD.
pub fn verify_and_parse_at(
    public_key: &RsaPublicKey,
    headers: &WebhookHeaders,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<GatewayEvent, WebhookRejection> {
    let mut signatures = headers.get_all(WEBHOOK_SIGNATURE_HEADER);
    let header = signatures.next().ok_or(SignatureError::Missing)?;
    if signatures.next().is_some() {
        return Err(SignatureError::Ambiguous.into());
    }
    // A header value that is not even visible ASCII cannot be base64.
    let signature_b64 = std::str::from_utf8(header)
        .ok()
        .filter(|text| {
            text.bytes()
                .all(|byte| byte.is_ascii_graphic() || byte == b' ')
        })
        .ok_or(SignatureError::NotBase64)?;
    signature::verify(public_key, body, signature_b64)?;

    let event: wire::Event = serde_json::from_slice(body)
        .map_err(|error| WebhookRejection::Malformed(format!("not an event object: {error}")))?;
    event_from_wire(event, now).map_err(WebhookRejection::Malformed)
}

/// Ping++ judges a delivery by its status code alone: any 2xx stops the resends, anything
/// else asks for another. The bodies are for people reading delivery logs.
pub fn reply(verdict: WebhookVerdict<'_>) -> WebhookReply {
    let (status, body) = match verdict {
        WebhookVerdict::Recorded => (200, serde_json::json!({ "received": true })),
        WebhookVerdict::Refused(rejection) => (
            match rejection {
                WebhookRejection::Signature(_) => 401,
                WebhookRejection::Malformed(_) => 400,
            },
            serde_json::json!({ "error": { "code": rejection.code(), "message": rejection.to_string() } }),
        ),
        WebhookVerdict::RetryLater => (
            503,
            serde_json::json!({ "error": { "code": "webhook.retry_later", "message": "deliver it again later" } }),
        ),
    };
    WebhookReply {
        status,
        content_type: "application/json",
        body: body.to_string().into_bytes(),
    }
}

/// Reduces a verified event to the facts we act on; unknown types are kept as `Other`.
fn event_from_wire(event: wire::Event, now: DateTime<Utc>) -> Result<GatewayEvent, String> {
    let event_id = GatewayEventId::parse(&event.id).map_err(|error| error.to_string())?;
    let object = event.data.object;
    let gateway_event = match event.event_type.as_str() {
        event_types::CHARGE_SUCCEEDED => {
            let charge = charge_state_at(&charge_object(object)?, now)?;
            if !charge.paid {
                return Err(
                    "a charge.succeeded event whose charge is not paid (\"paid\": false)"
                        .to_owned(),
                );
            }
            GatewayEvent::ChargeSucceeded { event_id, charge }
        }
        event_types::CHARGE_FAILED => GatewayEvent::ChargeFailed {
            event_id,
            charge: charge_state_at(&charge_object(object)?, now)?,
        },
        event_types::REFUND_SUCCEEDED => GatewayEvent::RefundSucceeded {
            event_id,
            refund: refund_facts_at(&refund_object(object)?, now)?,
        },
        event_types::REFUND_FAILED => GatewayEvent::RefundFailed {
            event_id,
            refund: refund_facts_at(&refund_object(object)?, now)?,
        },
        _ => GatewayEvent::Other {
            event_id,
            event_type: without_nul(&event.event_type),
        },
    };
    Ok(gateway_event)
}

fn charge_object(object: serde_json::Value) -> Result<wire::Charge, String> {
    serde_json::from_value(object).map_err(|error| format!("not a charge object: {error}"))
}

fn refund_object(object: serde_json::Value) -> Result<wire::Refund, String> {
    serde_json::from_value(object).map_err(|error| format!("not a refund object: {error}"))
}

/// A charge object as the ledger sees it. Used for webhooks and for retrieved charges alike,
/// so both paths agree on every field.
pub fn charge_state(charge: &wire::Charge) -> Result<ChargeState, String> {
    charge_state_at(charge, Utc::now())
}

/// `charge_state` with the clock passed in: a `time_paid` beyond `now` plus the allowed skew is
/// clamped to `now`.
pub fn charge_state_at(charge: &wire::Charge, now: DateTime<Utc>) -> Result<ChargeState, String> {
    let charge_id = ChargeId::parse(&charge.id).map_err(|error| error.to_string())?;
    let currency = charge
        .currency
        .parse::<Currency>()
        .map_err(|error| error.to_string())?;
    let amount = Money::new(charge.amount, currency).map_err(|error| error.to_string())?;
    let time_paid = charge
        .time_paid
        .map(|seconds| gateway_time(seconds, "time_paid", now))
        .transpose()?;
    Ok(ChargeState {
        charge_id,
        order_no: without_nul(&charge.order_no),
        amount,
        paid: charge.paid,
        time_paid,
        transaction_no: non_empty(charge.transaction_no.as_deref()),
        failure_code: non_empty(charge.failure_code.as_deref()),
        failure_message: non_empty(charge.failure_msg.as_deref()),
    })
}

/// A refund object's facts. Our refund id comes from the metadata we sent; a refund made in
/// the dashboard has none, and neither has one whose metadata was altered.
pub fn refund_facts(refund: &wire::Refund) -> Result<RefundFacts, String> {
    refund_facts_at(refund, Utc::now())
}

/// `refund_facts` with the clock passed in: a `time_succeed` beyond `now` plus the allowed skew
/// is clamped to `now`.
pub fn refund_facts_at(refund: &wire::Refund, now: DateTime<Utc>) -> Result<RefundFacts, String> {
    let gateway_refund_id =
        GatewayRefundId::parse(&refund.id).map_err(|error| error.to_string())?;
    let charge_id = ChargeId::parse(&refund.charge).map_err(|error| error.to_string())?;
    let amount = Money::new(refund.amount, REFUND_CURRENCY).map_err(|error| error.to_string())?;
    let refund_id = refund
        .metadata
        .get(REFUND_ID_METADATA_KEY)
        .and_then(serde_json::Value::as_str)
        .and_then(|text| text.parse::<RefundId>().ok());
    let succeeded_at = refund
        .time_succeed
        .map(|seconds| gateway_time(seconds, "time_succeed", now))
        .transpose()?;
    Ok(RefundFacts {
        gateway_refund_id,
        charge_id,
        charge_order_no: non_empty(refund.charge_order_no.as_deref()),
        refund_id,
        amount,
        succeeded_at,
        failure_code: non_empty(refund.failure_code.as_deref()),
        failure_message: non_empty(refund.failure_msg.as_deref()),
    })
}

/// A gateway timestamp, bounded: one further ahead of `now` than the allowed skew is clamped
/// to `now`, with a warning that names the value received.
fn gateway_time(seconds: i64, field: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let time = DateTime::from_timestamp(seconds, 0)
        .ok_or_else(|| format!("{field} {seconds} is not a representable time"))?;
    let latest = now
        .checked_add_signed(chrono::Duration::seconds(GATEWAY_CLOCK_SKEW_SECONDS_MAX))
        .unwrap_or(now);
    if time > latest {
        tracing::warn!(
            field,
            received = seconds,
            clamped_to = now.timestamp(),
            "the gateway reported a time in the future; using ours"
        );
        return Ok(now);
    }
    Ok(time)
}

/// Ping++ sends absent text both as `null` and as `""`; both mean "none".
fn non_empty(text: Option<&str>) -> Option<String> {
    text.filter(|text| !text.is_empty()).map(without_nul)
}

/// The text with every U+0000 replaced by U+FFFD, which every store can hold.
fn without_nul(text: &str) -> String {
    text.replace('\0', NUL_REPLACEMENT)
}

/// One RSA key shared by every test module of the Ping++ client, because generating keys is
/// slow.
#[cfg(test)]
pub(crate) fn shared_test_key() -> &'static rsa::RsaPrivateKey {
    #![allow(clippy::expect_used)]
    static KEY: std::sync::OnceLock<rsa::RsaPrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| super::keys::generate().expect("a test key"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::pingpp::keys;

    const BODY: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pingpp/body.raw"
    ));
    const BODY_TAMPERED: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pingpp/body_tampered.raw"
    ));
    const BODY_TRAILING_NEWLINE: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pingpp/body_trailing_newline.raw"
    ));
    const SIGNATURE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pingpp/signature.b64"
    ));
    const PUBLIC_KEY_PEM: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pingpp/public_key.pem"
    ));

    fn pingpp_key() -> RsaPublicKey {
        keys::public_key_from_pem(PUBLIC_KEY_PEM).unwrap()
    }

    fn signed_headers(signature_b64: &str) -> WebhookHeaders {
        [("X-Pingplusplus-Signature", signature_b64.trim())]
            .into_iter()
            .collect()
    }

    fn rejection(body: &[u8], headers: &WebhookHeaders) -> WebhookRejection {
        verify_and_parse(&pingpp_key(), headers, body).unwrap_err()
    }

    /// Signs `body` with the shared test key, as the gateway would with its own.
    fn signed_by_test_key(body: &[u8]) -> (RsaPublicKey, WebhookHeaders) {
        let key = shared_test_key();
        let headers = signed_headers(&signature::sign(key, body));
        (key.to_public_key(), headers)
    }

    #[test]
    fn the_genuine_webhook_verifies_and_reads() {
        let event = verify_and_parse(&pingpp_key(), &signed_headers(SIGNATURE), BODY).unwrap();
        let GatewayEvent::ChargeSucceeded { event_id, charge } = event else {
            panic!("expected charge.succeeded, got {event:?}");
        };
        assert_eq!(event_id.as_str(), "evt_eYa58Wd44Glerl8AgfYfd1sL");
        assert_eq!(charge.charge_id.as_str(), "ch_bq9IHKnn6GnLzsS0swOujr4x");
        assert_eq!(charge.amount, Money::new(100, Currency::Cny).unwrap());
        assert_eq!(charge.order_no, "2015d019f7cf6c0d");
        assert!(charge.paid);
        assert_eq!(charge.time_paid.unwrap().timestamp(), 1_434_368_074);
        assert_eq!(
            charge.transaction_no.as_deref(),
            Some("1014400031201506150354653857")
        );
        assert_eq!(charge.failure_code, None);
    }

    #[test]
    fn a_tampered_body_is_refused() {
        assert_eq!(
            rejection(BODY_TAMPERED, &signed_headers(SIGNATURE)),
            WebhookRejection::Signature(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_trailing_newline_breaks_the_signature() {
        assert_eq!(
            rejection(BODY_TRAILING_NEWLINE, &signed_headers(SIGNATURE)),
            WebhookRejection::Signature(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_missing_signature_header_is_refused() {
        assert_eq!(
            rejection(BODY, &WebhookHeaders::new()),
            WebhookRejection::Signature(SignatureError::Missing)
        );
    }

    #[test]
    fn an_empty_signature_header_counts_as_missing() {
        assert_eq!(
            rejection(BODY, &signed_headers("")),
            WebhookRejection::Signature(SignatureError::Missing)
        );
    }

    #[test]
    fn a_signature_that_is_not_base64_is_refused() {
        assert_eq!(
            rejection(BODY, &signed_headers("not base64 at all!")),
            WebhookRejection::Signature(SignatureError::NotBase64)
        );
    }

    #[test]
    fn another_key_does_not_verify_the_genuine_body() {
        let other_key = shared_test_key().to_public_key();
        assert_eq!(
            verify_and_parse(&other_key, &signed_headers(SIGNATURE), BODY).unwrap_err(),
            WebhookRejection::Signature(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_key_file_with_a_byte_order_mark_still_verifies() {
        let pem = format!("\u{feff}{PUBLIC_KEY_PEM}");
        let key = keys::public_key_from_pem(&pem).unwrap();
        assert!(verify_and_parse(&key, &signed_headers(SIGNATURE), BODY).is_ok());
    }

    #[test]
    fn a_signed_body_that_is_not_json_is_malformed() {
        let body = b"this is not json";
        let (key, headers) = signed_by_test_key(body);
        let rejection = verify_and_parse(&key, &headers, body).unwrap_err();
        assert!(
            matches!(rejection, WebhookRejection::Malformed(_)),
            "{rejection:?}"
        );
        assert_eq!(rejection.code(), "webhook.malformed");
    }

    #[test]
    fn an_unknown_event_type_is_kept_as_other() {
        let body = br#"{"id":"evt_summary1","object":"event","created":1,"type":"summary.daily.available","data":{"object":{"object":"summary"}}}"#;
        let (key, headers) = signed_by_test_key(body);
        let event = verify_and_parse(&key, &headers, body).unwrap();
        assert_eq!(
            event,
            GatewayEvent::Other {
                event_id: GatewayEventId::parse("evt_summary1").unwrap(),
                event_type: "summary.daily.available".to_owned(),
            }
        );
    }

    #[test]
    fn a_charge_in_an_unknown_currency_is_malformed() {
        let body = String::from_utf8(BODY.to_vec())
            .unwrap()
            .replace("\"cny\"", "\"usd\"");
        let (key, headers) = signed_by_test_key(body.as_bytes());
        let rejection = verify_and_parse(&key, &headers, body.as_bytes()).unwrap_err();
        assert!(
            matches!(rejection, WebhookRejection::Malformed(_)),
            "{rejection:?}"
        );
    }

    #[test]
    fn an_event_with_a_foreign_id_is_malformed() {
        let body = String::from_utf8(BODY.to_vec())
            .unwrap()
            .replace("evt_eYa58Wd44Glerl8AgfYfd1sL", "not-an-event-id");
        let (key, headers) = signed_by_test_key(body.as_bytes());
        let rejection = verify_and_parse(&key, &headers, body.as_bytes()).unwrap_err();
        assert!(
            matches!(rejection, WebhookRejection::Malformed(_)),
            "{rejection:?}"
        );
    }

    fn refund_event(event_type: &str, metadata: &str) -> String {
        format!(
            r#"{{"id":"evt_refund1","object":"event","created":1700000100,"livemode":false,"type":"{event_type}","data":{{"object":{{"id":"re_abc123","object":"refund","order_no":"re_order","amount":40,"created":1700000000,"succeed":true,"status":"succeeded","time_succeed":1700000050,"description":"partial","failure_code":null,"failure_msg":null,"metadata":{metadata},"charge":"ch_bq9IHKnn6GnLzsS0swOujr4x","charge_order_no":"2015d019f7cf6c0d","transaction_no":"2004450349201512090096425284"}}}},"pending_webhooks":0,"request":null}}"#
        )
    }

    #[test]
    fn a_refund_webhook_carries_our_refund_id() {
        let refund_id = uuid::Uuid::new_v4();
        let body = refund_event(
            "refund.succeeded",
            &format!(r#"{{"refund_id":"{refund_id}"}}"#),
        );
        let (key, headers) = signed_by_test_key(body.as_bytes());
        let event = verify_and_parse(&key, &headers, body.as_bytes()).unwrap();
        let GatewayEvent::RefundSucceeded { event_id, refund } = event else {
            panic!("expected refund.succeeded, got {event:?}");
        };
        assert_eq!(event_id.as_str(), "evt_refund1");
        assert_eq!(refund.gateway_refund_id.as_str(), "re_abc123");
        assert_eq!(refund.charge_id.as_str(), "ch_bq9IHKnn6GnLzsS0swOujr4x");
        assert_eq!(refund.charge_order_no.as_deref(), Some("2015d019f7cf6c0d"));
        assert_eq!(refund.refund_id, Some(RefundId::from_uuid(refund_id)));
        assert_eq!(refund.amount, Money::new(40, Currency::Cny).unwrap());
        assert_eq!(refund.succeeded_at.unwrap().timestamp(), 1_700_000_050);
    }

    #[test]
    fn a_refund_we_did_not_ask_for_has_no_refund_id() {
        for metadata in ["{}", r#"{"refund_id":"garbage"}"#, r#"{"refund_id":7}"#] {
            let body = refund_event("refund.failed", metadata);
            let (key, headers) = signed_by_test_key(body.as_bytes());
            let event = verify_and_parse(&key, &headers, body.as_bytes()).unwrap();
            let GatewayEvent::RefundFailed { refund, .. } = event else {
                panic!("expected refund.failed, got {event:?}");
            };
            assert_eq!(refund.refund_id, None, "{metadata}");
        }
    }

    #[test]
    fn a_failed_charge_is_read_with_its_failure() {
        let body = String::from_utf8(BODY.to_vec())
            .unwrap()
            .replace("charge.succeeded", "charge.failed")
            .replace("\"paid\":true", "\"paid\":false")
            .replace("\"time_paid\":1434368074", "\"time_paid\":null")
            .replace(
                "\"failure_code\":null",
                "\"failure_code\":\"USER_CANCELLED\"",
            );
        let (key, headers) = signed_by_test_key(body.as_bytes());
        let event = verify_and_parse(&key, &headers, body.as_bytes()).unwrap();
        let GatewayEvent::ChargeFailed { charge, .. } = event else {
            panic!("expected charge.failed, got {event:?}");
        };
        assert!(!charge.paid);
        assert_eq!(charge.time_paid, None);
        assert_eq!(charge.failure_code.as_deref(), Some("USER_CANCELLED"));
    }

    /// The genuine body, altered by `edit`, signed with the test key.
    fn edited_and_signed(
        edit: impl Fn(String) -> String,
    ) -> (RsaPublicKey, WebhookHeaders, Vec<u8>) {
        let body = edit(String::from_utf8(BODY.to_vec()).unwrap()).into_bytes();
        let (key, headers) = signed_by_test_key(&body);
        (key, headers, body)
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn two_signature_headers_are_refused_as_ambiguous_even_when_both_are_genuine() {
        let headers: WebhookHeaders = [
            ("X-Pingplusplus-Signature", SIGNATURE.trim()),
            ("x-pingplusplus-signature", SIGNATURE.trim()),
        ]
        .into_iter()
        .collect();
        let refused = rejection(BODY, &headers);
        assert_eq!(
            refused,
            WebhookRejection::Signature(SignatureError::Ambiguous)
        );
        assert_eq!(refused.code(), "webhook.signature_ambiguous");
        let mut one_good_one_bad = signed_headers(SIGNATURE);
        one_good_one_bad.push("X-Pingplusplus-Signature", "AAAA");
        assert_eq!(
            rejection(BODY, &one_good_one_bad),
            WebhookRejection::Signature(SignatureError::Ambiguous)
        );
    }

    #[test]
    fn a_charge_succeeded_that_is_not_paid_never_reads_as_a_payment() {
        let (key, headers, body) =
            edited_and_signed(|body| body.replace("\"paid\":true", "\"paid\":false"));
        assert!(!String::from_utf8_lossy(&body).contains("\"paid\":true"));
        let rejection = verify_and_parse(&key, &headers, &body).unwrap_err();
        let WebhookRejection::Malformed(message) = &rejection else {
            panic!("expected a malformed event, got {rejection:?}");
        };
        assert!(message.contains("not paid"), "{message}");
        assert_eq!(rejection.code(), "webhook.malformed");
    }

    #[test]
    fn a_payment_time_far_in_the_future_is_clamped_to_now() {
        let now = at(1_800_000_000);
        let (key, headers, body) = edited_and_signed(|body| {
            body.replace("\"time_paid\":1434368074", "\"time_paid\":253402300799")
        });
        let event = verify_and_parse_at(&key, &headers, &body, now).unwrap();
        let GatewayEvent::ChargeSucceeded { charge, .. } = event else {
            panic!("expected charge.succeeded, got {event:?}");
        };
        assert_eq!(charge.time_paid, Some(now));
    }

    #[test]
    fn a_payment_time_within_the_allowed_skew_is_kept() {
        let now = at(1_434_368_074 - GATEWAY_CLOCK_SKEW_SECONDS_MAX);
        let (key, headers, body) = edited_and_signed(|body| body);
        let event = verify_and_parse_at(&key, &headers, &body, now).unwrap();
        let GatewayEvent::ChargeSucceeded { charge, .. } = event else {
            panic!("expected charge.succeeded, got {event:?}");
        };
        assert_eq!(charge.time_paid, Some(at(1_434_368_074)));
        let just_past = now - chrono::Duration::seconds(1);
        let event = verify_and_parse_at(&key, &headers, &body, just_past).unwrap();
        let GatewayEvent::ChargeSucceeded { charge, .. } = event else {
            panic!("expected charge.succeeded, got {event:?}");
        };
        assert_eq!(charge.time_paid, Some(just_past));
    }

    #[test]
    fn a_refund_time_far_in_the_future_is_clamped_to_now() {
        let now = at(1_700_000_000);
        let body = refund_event("refund.succeeded", "{}").replace(
            "\"time_succeed\":1700000050",
            "\"time_succeed\":253402300799",
        );
        let (key, headers) = signed_by_test_key(body.as_bytes());
        let event = verify_and_parse_at(&key, &headers, body.as_bytes(), now).unwrap();
        let GatewayEvent::RefundSucceeded { refund, .. } = event else {
            panic!("expected refund.succeeded, got {event:?}");
        };
        assert_eq!(refund.succeeded_at, Some(now));
    }

    #[test]
    fn nul_characters_in_text_fields_are_replaced() {
        let (key, headers, body) = edited_and_signed(|body| {
            body.replace(
                "\"transaction_no\":\"1014400031201506150354653857\"",
                "\"transaction_no\":\"10144\\u0000x\"",
            )
            .replace(
                "\"order_no\":\"2015d019f7cf6c0d\"",
                "\"order_no\":\"\\u00002015\"",
            )
            .replace("\"failure_msg\":null", "\"failure_msg\":\"a\\u0000b\"")
        });
        assert!(String::from_utf8_lossy(&body).contains("\\u0000x"));
        let event = verify_and_parse(&key, &headers, &body).unwrap();
        let GatewayEvent::ChargeSucceeded { charge, .. } = event else {
            panic!("expected charge.succeeded, got {event:?}");
        };
        assert_eq!(charge.transaction_no.as_deref(), Some("10144\u{fffd}x"));
        assert_eq!(charge.order_no, "\u{fffd}2015");
        assert_eq!(charge.failure_message.as_deref(), Some("a\u{fffd}b"));

        let body = br#"{"id":"evt_nul1","object":"event","created":1,"type":"summary\u0000","data":{"object":{}}}"#;
        let (key, headers) = signed_by_test_key(body);
        let event = verify_and_parse(&key, &headers, body).unwrap();
        assert!(!event.event_type().contains('\0'), "{event:?}");
    }
}
