//! Reading a kept query answer again, as `payledger verify` does long after the ledger acted
//! on it: first the gateway's signature where it signs its answers, then the facts, by the
//! same rules the client read them with when they arrived.

use aggregates::{ChargeId, Money};
use rsa::RsaPublicKey;

use crate::alipay::response::{self, ResponseError, Status};
use crate::port::{
    answer_protocols, charge_id_for_order_no, gateway_refund_id_for_refund_no, ChargeState,
    GatewayError, RefundFacts, RefundState,
};
use crate::signature::SignatureError;
use crate::wechatpay::platform::PlatformKeys;
use crate::wechatpay::sign::SERIAL_HEADER;
use crate::WebhookHeaders;

/// What a kept answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerFacts {
    Charge(ChargeState),
    Refund {
        state: RefundState,
        facts: RefundFacts,
    },
    /// Alipay's answer to a refund request that moved the money: it names the trade and the
    /// total refunded on it so far, not the refund.
    TradeRefunded {
        charge_id: ChargeId,
        order_no: String,
        refunded_total: Money,
    },
}

/// Why a kept answer does not read again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("`{0}` is not a kind of gateway answer this build reads")]
    UnknownProtocol(String),
    #[error("the answer is signed, but no key was given to check it with")]
    NoKey,
    #[error("the answer's signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("the answer does not read: {0}")]
    Unreadable(String),
}

impl From<GatewayError> for AnswerError {
    fn from(error: GatewayError) -> Self {
        Self::Unreadable(error.to_string())
    }
}

/// Whether the gateway signs answers of `protocol` (one of [`answer_protocols`]).
pub fn is_signed(protocol: &str) -> bool {
    !matches!(
        protocol,
        answer_protocols::PINGPP_CHARGE | answer_protocols::PINGPP_REFUND
    )
}

/// Reads `body`, kept as an answer of `protocol` with `headers`, again. A signed answer is
/// verified with `key` first (for WeChat Pay, under the serial its headers name); the
/// timestamp window of WeChat Pay does not apply to an answer accepted when it arrived.
pub fn reread(
    protocol: &str,
    key: Option<&RsaPublicKey>,
    headers: &WebhookHeaders,
    body: &[u8],
) -> Result<AnswerFacts, AnswerError> {
    match protocol {
        answer_protocols::PINGPP_CHARGE => {
            let charge: crate::pingpp::wire::Charge = json(body)?;
            let state =
                crate::pingpp::webhook::charge_state(&charge).map_err(AnswerError::Unreadable)?;
            Ok(AnswerFacts::Charge(state))
        }
        answer_protocols::PINGPP_REFUND => {
            let refund: crate::pingpp::wire::Refund = json(body)?;
            let state = crate::pingpp::client::refund_state(&refund)?;
            let facts =
                crate::pingpp::webhook::refund_facts(&refund).map_err(AnswerError::Unreadable)?;
            Ok(AnswerFacts::Refund { state, facts })
        }
        answer_protocols::ALIPAY_TRADE_QUERY => {
            let raw = alipay_response(protocol, key, body)?;
            let trade: crate::alipay::wire::QueryResponse = json(raw.as_bytes())?;
            Ok(AnswerFacts::Charge(crate::alipay::client::charge_state(
                &trade,
            )?))
        }
        answer_protocols::ALIPAY_REFUND_QUERY => {
            let raw = alipay_response(protocol, key, body)?;
            let answer: crate::alipay::wire::RefundQueryResponse = json(raw.as_bytes())?;
            let charge_id = charge_of(answer.out_trade_no.as_deref().unwrap_or_default())?;
            let gateway_refund_id = answer
                .out_request_no
                .as_deref()
                .and_then(gateway_refund_id_for_refund_no)
                .ok_or_else(|| AnswerError::Unreadable("the refund is not ours".to_owned()))?;
            let (state, facts) =
                crate::alipay::client::refund_lookup(&charge_id, &gateway_refund_id, &answer)?;
            Ok(AnswerFacts::Refund { state, facts })
        }
        answer_protocols::ALIPAY_REFUND => {
            let raw = alipay_response(protocol, key, body)?;
            let answer: crate::alipay::wire::RefundResponse = json(raw.as_bytes())?;
            // Only an answer whose call moved the money says a refund finished.
            if answer.fund_change.as_deref() != Some(crate::alipay::wire::FUND_CHANGED) {
                return Err(AnswerError::Unreadable(
                    "the refund answer does not say this call moved money".to_owned(),
                ));
            }
            let refunded_total = answer
                .refund_fee
                .as_deref()
                .ok_or_else(|| AnswerError::Unreadable("the answer has no refund_fee".to_owned()))
                .and_then(|fee| {
                    crate::alipay::notify::money(fee).map_err(AnswerError::Unreadable)
                })?;
            Ok(AnswerFacts::TradeRefunded {
                charge_id: charge_of(&answer.out_trade_no)?,
                order_no: answer.out_trade_no,
                refunded_total,
            })
        }
        answer_protocols::WECHATPAY_TRANSACTION => {
            wechatpay_signature(key, headers, body)?;
            let transaction: crate::wechatpay::notify::Transaction = json(body)?;
            crate::wechatpay::notify::charge_state(&transaction)
                .map_err(AnswerError::Unreadable)?
                .map(AnswerFacts::Charge)
                .ok_or_else(|| AnswerError::Unreadable("the order is not ours".to_owned()))
        }
        answer_protocols::WECHATPAY_REFUND => {
            wechatpay_signature(key, headers, body)?;
            let refund: crate::wechatpay::wire::Refund = json(body)?;
            let charge_id = charge_of(&refund.out_trade_no)?;
            let (state, facts) = crate::wechatpay::client::refund_lookup(&charge_id, &refund)?;
            Ok(AnswerFacts::Refund { state, facts })
        }
        other => Err(AnswerError::UnknownProtocol(other.to_owned())),
    }
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AnswerError> {
    serde_json::from_slice(body).map_err(|error| AnswerError::Unreadable(error.to_string()))
}

fn charge_of(order_no: &str) -> Result<ChargeId, AnswerError> {
    charge_id_for_order_no(order_no)
        .ok_or_else(|| AnswerError::Unreadable(format!("order number `{order_no}` is not ours")))
}

/// The verified text of an Alipay answer's `*_response` member, which must be a success.
fn alipay_response<'a>(
    method: &str,
    key: Option<&RsaPublicKey>,
    body: &'a [u8],
) -> Result<&'a str, AnswerError> {
    let key = key.ok_or(AnswerError::NoKey)?;
    let text = std::str::from_utf8(body)
        .map_err(|_| AnswerError::Unreadable("the answer is not UTF-8".to_owned()))?;
    let raw = response::verify(key, method, text).map_err(|error| match error {
        ResponseError::Signature(signature) => AnswerError::Signature(signature),
        other => AnswerError::Unreadable(other.to_string()),
    })?;
    let status: Status = json(raw.as_bytes())?;
    if status.code != crate::alipay::wire::codes::SUCCESS {
        return Err(AnswerError::Unreadable(format!(
            "the answer is not a success (code {})",
            status.code
        )));
    }
    Ok(raw)
}

/// Checks a WeChat Pay answer's signature with `key` under the serial its headers name.
fn wechatpay_signature(
    key: Option<&RsaPublicKey>,
    headers: &WebhookHeaders,
    body: &[u8],
) -> Result<(), AnswerError> {
    let key = key.ok_or(AnswerError::NoKey)?;
    let serial = headers
        .get(SERIAL_HEADER)
        .and_then(|serial| std::str::from_utf8(serial).ok())
        .unwrap_or_default();
    let platform = PlatformKeys::new().with(serial, key.clone());
    crate::wechatpay::notify::verify_kept_signature(&platform, headers, body)?;
    Ok(())
}
