//! The WeChat Pay v3 client: every request carries a freshly signed Authorization header and
//! every answer is verified against the platform key before it is read. Calls are keyed by
//! our order number (`out_trade_no`) and refund number (`out_refund_no`), so repeating one
//! finds the first instead of doubling it.

use std::sync::Arc;

use aggregates::{ChargeId, Currency, GatewayRefundId, Money, RefundId};
use chrono::{DateTime, FixedOffset, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use rsa::RsaPrivateKey;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::notify::{self, NonceCache, Transaction};
use super::platform::PlatformKeys;
use super::resource::ApiV3Key;
use super::sign::{
    self, Authorization, NONCE_HEADER, SERIAL_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use super::wire::{self, codes, paths};
use crate::clock::Clock;
use crate::http::{self, Answer};
use crate::port::{
    answer_protocols, charge_id_for_order_no, gateway_refund_id_for_refund_no, order_no_for,
    order_no_of_charge, refund_id_from_refund_no, refund_no_for, refund_no_of, ChargeRequest,
    CloseOutcome, GatewayError, GatewayEvent, IssuedCharge, IssuedRefund, PaymentGateway,
    QueryAnswer, RefundFacts, RefundRequest, RefundState, RetrievedCharge, RetrievedRefund,
    WebhookRejection, WebhookReply, WebhookVerdict,
};
use crate::WebhookHeaders;

/// WeChat Pay's production API.
pub const API_BASE_DEFAULT: &str = "https://api.mch.weixin.qq.com";
/// WeChat Pay's limits on the text we send, in characters.
pub const DESCRIPTION_CHARS_MAX: usize = 127;
pub const REFUND_REASON_CHARS_MAX: usize = 80;
const UPSTREAM_MESSAGE_CHARS_MAX: usize = 300;
/// WeChat Pay writes times in China Standard Time.
const CHINA_OFFSET_SECONDS: i32 = 8 * 3600;

/// Everything the client needs; keys are parsed already, so a bad key fails at start-up.
pub struct WechatPaySettings {
    /// E.g. "https://api.mch.weixin.qq.com", without a trailing slash.
    pub api_base: String,
    pub mchid: String,
    pub appid: String,
    /// The serial of our merchant API certificate, named in every Authorization header.
    pub merchant_serial: String,
    pub merchant_private_key: RsaPrivateKey,
    /// Verifies answers and callbacks.
    pub platform_keys: PlatformKeys,
    /// Opens callbacks' resources.
    pub api_v3_key: ApiV3Key,
    /// Where WeChat Pay posts callbacks for the orders and refunds we create.
    pub notify_url: String,
    /// "wechatpay", or "sandbox" when the gateway is the in-process imitation.
    pub provider_name: &'static str,
}

pub struct WechatPayClient {
    http: reqwest::Client,
    settings: WechatPaySettings,
    clock: Arc<dyn Clock>,
    nonces: NonceCache,
}

impl std::fmt::Debug for WechatPayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatPayClient")
            .field("api_base", &self.settings.api_base)
            .field("mchid", &self.settings.mchid)
            .field("merchant_serial", &self.settings.merchant_serial)
            .field("provider_name", &self.settings.provider_name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientBuildError {
    #[error("the WeChat Pay API base {0} is not an http(s) URL")]
    ApiBase(String),
    #[error("building the HTTP client failed: {0}")]
    Http(String),
}

impl WechatPayClient {
    /// `clock` decides whether a callback's timestamp is fresh; `nonces` remembers the
    /// callbacks already admitted (bounded, in memory).
    pub fn new(
        settings: WechatPaySettings,
        clock: Arc<dyn Clock>,
        nonces: NonceCache,
    ) -> Result<Self, ClientBuildError> {
        let api_base = settings.api_base.trim_end_matches('/').to_owned();
        match reqwest::Url::parse(&api_base) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.query().is_none() => {}
            _ => return Err(ClientBuildError::ApiBase(api_base)),
        }
        let http = http::build_client(http::CONNECT_TIMEOUT, http::REQUEST_TIMEOUT)
            .map_err(ClientBuildError::Http)?;
        Ok(Self {
            http,
            settings: WechatPaySettings {
                api_base,
                ..settings
            },
            clock,
            nonces,
        })
    }

    /// Sends a signed request (re-signed for every try) and verifies the answer's signature.
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, GatewayError> {
        let url = format!("{}{path_and_query}", self.settings.api_base);
        // The signature covers the request's absolute path, base path included.
        let signed_path = reqwest::Url::parse(&url)
            .map(|parsed| match parsed.query() {
                Some(query) => format!("{}?{query}", parsed.path()),
                None => parsed.path().to_owned(),
            })
            .map_err(protocol)?;
        let body = body.unwrap_or_default();
        let answer = http::send(self.settings.provider_name, || {
            let authorization = Authorization::sign(
                &self.settings.merchant_private_key,
                &self.settings.mchid,
                &self.settings.merchant_serial,
                method.as_str(),
                &signed_path,
                self.clock.now().timestamp(),
                &sign::nonce(),
                &body,
            );
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header(AUTHORIZATION, authorization.header_value())
                .header(ACCEPT, "application/json");
            if method != Method::GET {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            Ok(request)
        })
        .await?;
        // A success we cannot attribute to the platform is not read, whatever it says. A
        // failure is read unsigned (a proxy's 502 page carries no signature): it fails the
        // call, and no fact is ever recorded from one.
        if (200..300).contains(&answer.status) {
            notify::verify_signature(
                &self.settings.platform_keys,
                &answer.headers,
                &answer.body,
                self.clock.now(),
            )
            .map_err(|error| GatewayError::Protocol(format!("the answer's signature: {error}")))?;
        }
        Ok(answer)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, GatewayError> {
        self.call_answer(method, path_and_query, body)
            .await
            .map(|(value, _)| value)
    }

    /// Like [`Self::call`], also returning the verified answer as received.
    async fn call_answer<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&impl Serialize>,
    ) -> Result<(T, Answer), GatewayError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|error| GatewayError::Protocol(error.to_string()))?;
        let answer = self.send(method, path_and_query, body).await?;
        if !(200..300).contains(&answer.status) {
            return Err(status_error(&answer));
        }
        serde_json::from_slice(&answer.body)
            .map(|value| (value, answer))
            .map_err(|error| GatewayError::Protocol(format!("{path_and_query}: {error}")))
    }

    /// A verified answer as evidence: its body and the headers that sign it, with the
    /// fingerprint of the platform key its serial names.
    fn kept_answer(
        &self,
        answer_protocol: &'static str,
        answer: Answer,
    ) -> Result<QueryAnswer, GatewayError> {
        let key = answer
            .headers
            .get(SERIAL_HEADER)
            .and_then(|serial| std::str::from_utf8(serial).ok())
            .and_then(|serial| self.settings.platform_keys.get(serial))
            .ok_or_else(|| protocol("the answer's serial names no platform key"))?;
        Ok(QueryAnswer::signed(
            answer_protocol,
            answer.body,
            key,
            &answer.headers,
            &SIGNED_ANSWER_HEADERS,
        ))
    }

    async fn transaction(&self, out_trade_no: &str) -> Result<Transaction, GatewayError> {
        self.transaction_answer(out_trade_no)
            .await
            .map(|(transaction, _)| transaction)
    }

    async fn transaction_answer(
        &self,
        out_trade_no: &str,
    ) -> Result<(Transaction, Answer), GatewayError> {
        let path = paths::query(out_trade_no, &self.settings.mchid);
        self.call_answer(Method::GET, &path, None::<&()>).await
    }
}

/// The headers that sign an answer or a callback: the signed message is
/// `timestamp\nnonce\nbody\n`, under the platform key the serial names.
const SIGNED_ANSWER_HEADERS: [&str; 4] = [
    TIMESTAMP_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    SERIAL_HEADER,
];

/// A failed call's answer as our error.
fn status_error(answer: &Answer) -> GatewayError {
    let detail = serde_json::from_slice::<wire::ErrorBody>(&answer.body).ok();
    let message = detail
        .as_ref()
        .map(|detail| truncated(&detail.message))
        .unwrap_or_else(|| format!("HTTP {}", answer.status));
    match answer.status {
        401 => GatewayError::Authentication,
        429 | 500..=599 => GatewayError::Upstream(format!("HTTP {}: {message}", answer.status)),
        400..=499 => GatewayError::Rejected {
            code: detail.map(|detail| truncated(&detail.code)),
            message,
        },
        other => GatewayError::Protocol(format!("unexpected HTTP {other}")),
    }
}

fn error_code(error: &GatewayError) -> Option<&str> {
    match error {
        GatewayError::Rejected { code, .. } => code.as_deref(),
        _ => None,
    }
}

fn truncated(text: &str) -> String {
    text.chars().take(UPSTREAM_MESSAGE_CHARS_MAX).collect()
}

fn protocol(error: impl std::fmt::Display) -> GatewayError {
    GatewayError::Protocol(error.to_string())
}

fn cny_fen(money: &Money) -> Result<i64, GatewayError> {
    if money.currency() != Currency::Cny {
        return Err(GatewayError::Rejected {
            code: Some("currency".to_owned()),
            message: format!(
                "WeChat Pay charges CNY only, not {}",
                money.currency().code()
            ),
        });
    }
    Ok(money.amount_minor())
}

/// RFC 3339 in Beijing time, as WeChat Pay writes `time_expire`.
fn china_rfc3339(time: DateTime<Utc>) -> String {
    match FixedOffset::east_opt(CHINA_OFFSET_SECONDS) {
        Some(offset) => time.with_timezone(&offset).to_rfc3339(),
        None => time.to_rfc3339(),
    }
}

/// How a refund the platform described stands, and its facts.
pub fn refund_lookup(
    charge_id: &ChargeId,
    refund: &wire::Refund,
) -> Result<(RefundState, RefundFacts), GatewayError> {
    let gateway_refund_id = gateway_refund_id_for_refund_no(&refund.out_refund_no)
        .ok_or_else(|| protocol(format!("refund {} is not ours", refund.out_refund_no)))?;
    let state = match refund.status.as_str() {
        "SUCCESS" => RefundState::Succeeded,
        "PROCESSING" => RefundState::Pending,
        "CLOSED" | "ABNORMAL" => RefundState::Failed,
        other => return Err(protocol(format!("unknown refund status {other}"))),
    };
    let succeeded_at = refund
        .success_time
        .as_deref()
        .filter(|_| state == RefundState::Succeeded)
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|time| time.with_timezone(&Utc))
                .map_err(protocol)
        })
        .transpose()?;
    Ok((
        state,
        RefundFacts {
            gateway_refund_id,
            charge_id: charge_id.clone(),
            charge_order_no: Some(order_no_of_charge(charge_id).to_owned()),
            refund_id: refund_id_from_refund_no(&refund.out_refund_no),
            amount: Money::new(refund.amount.refund, Currency::Cny).map_err(protocol)?,
            succeeded_at,
            failure_code: (state == RefundState::Failed).then(|| refund.status.clone()),
            failure_message: None,
        },
    ))
}

#[async_trait::async_trait]
impl PaymentGateway for WechatPayClient {
    fn provider(&self) -> &'static str {
        self.settings.provider_name
    }

    async fn create_charge(&self, request: &ChargeRequest) -> Result<IssuedCharge, GatewayError> {
        let order_no = order_no_for(&request.order_id);
        let asked = wire::NativeRequest {
            appid: self.settings.appid.clone(),
            mchid: self.settings.mchid.clone(),
            description: request
                .subject
                .chars()
                .take(DESCRIPTION_CHARS_MAX)
                .collect(),
            out_trade_no: order_no.clone(),
            time_expire: china_rfc3339(request.expires_at),
            notify_url: self.settings.notify_url.clone(),
            amount: wire::Amount {
                total: cny_fen(&request.amount)?,
                currency: "CNY".to_owned(),
            },
        };
        let created: wire::NativeResponse =
            self.call(Method::POST, paths::NATIVE, Some(&asked)).await?;
        if created.code_url.is_empty() {
            return Err(protocol("the order has no code_url"));
        }
        let charge_id = charge_id_for_order_no(&order_no)
            .ok_or_else(|| protocol("our order number makes no charge id"))?;
        Ok(IssuedCharge {
            charge_id,
            qr_code: created.code_url,
            expires_at: request.expires_at,
        })
    }

    async fn retrieve_charge(&self, charge_id: &ChargeId) -> Result<RetrievedCharge, GatewayError> {
        let out_trade_no = order_no_of_charge(charge_id);
        let (transaction, answer) = self.transaction_answer(out_trade_no).await?;
        if transaction.out_trade_no != out_trade_no {
            return Err(protocol(format!(
                "asked for order {out_trade_no}, got {}",
                transaction.out_trade_no
            )));
        }
        let charge = notify::charge_state(&transaction)
            .map_err(protocol)?
            .ok_or_else(|| protocol("the order is not one of ours"))?;
        Ok(RetrievedCharge {
            charge,
            answer: self.kept_answer(answer_protocols::WECHATPAY_TRANSACTION, answer)?,
        })
    }

    async fn create_refund(&self, request: &RefundRequest) -> Result<IssuedRefund, GatewayError> {
        let out_trade_no = order_no_of_charge(&request.charge_id).to_owned();
        // A refund must state the order's total, which only the order itself knows.
        let total = self
            .transaction(&out_trade_no)
            .await?
            .amount
            .map(|amount| amount.total)
            .ok_or_else(|| protocol("the order has no amount"))?;
        let asked = wire::RefundRequest {
            out_trade_no,
            out_refund_no: refund_no_for(&request.refund_id),
            reason: Some(
                request
                    .description
                    .chars()
                    .take(REFUND_REASON_CHARS_MAX)
                    .collect(),
            ),
            notify_url: Some(self.settings.notify_url.clone()),
            amount: wire::RefundAmount {
                refund: cny_fen(&request.amount)?,
                total,
                currency: "CNY".to_owned(),
            },
        };
        let (refund, answer): (wire::Refund, _) = self
            .call_answer(Method::POST, paths::REFUNDS, Some(&asked))
            .await?;
        let (state, facts) = refund_lookup(&request.charge_id, &refund)?;
        Ok(IssuedRefund {
            gateway_refund_id: facts.gateway_refund_id,
            state,
            answer: self.kept_answer(answer_protocols::WECHATPAY_REFUND, answer)?,
        })
    }

    async fn retrieve_refund(
        &self,
        charge_id: &ChargeId,
        gateway_refund_id: &GatewayRefundId,
    ) -> Result<RetrievedRefund, GatewayError> {
        let path = paths::refund(refund_no_of(gateway_refund_id));
        let (refund, answer): (wire::Refund, _) =
            self.call_answer(Method::GET, &path, None::<&()>).await?;
        let (state, facts) = refund_lookup(charge_id, &refund)?;
        if &facts.gateway_refund_id != gateway_refund_id {
            return Err(protocol(format!(
                "asked for refund {gateway_refund_id}, got {}",
                facts.gateway_refund_id
            )));
        }
        Ok(RetrievedRefund {
            state,
            facts,
            answer: self.kept_answer(answer_protocols::WECHATPAY_REFUND, answer)?,
        })
    }

    /// WeChat Pay knows a refund by our refund number (`out_refund_no`); a number it never
    /// saw is `RESOURCE_NOT_EXISTS`.
    async fn find_refund(
        &self,
        charge_id: &ChargeId,
        refund_id: &RefundId,
    ) -> Result<Option<RetrievedRefund>, GatewayError> {
        let gateway_refund_id = gateway_refund_id_for_refund_no(&refund_no_for(refund_id))
            .ok_or_else(|| protocol("our refund number makes no refund id"))?;
        match self.retrieve_refund(charge_id, &gateway_refund_id).await {
            Ok(found) => Ok(Some(found)),
            Err(error) if error_code(&error) == Some(codes::RESOURCE_NOT_EXISTS) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn close_charge(&self, charge_id: &ChargeId) -> Result<CloseOutcome, GatewayError> {
        let path = paths::close(order_no_of_charge(charge_id));
        let asked = wire::CloseRequest {
            mchid: self.settings.mchid.clone(),
        };
        let body = serde_json::to_vec(&asked).map_err(protocol)?;
        let answer = self.send(Method::POST, &path, Some(body)).await?;
        if (200..300).contains(&answer.status) {
            return Ok(CloseOutcome::Closed);
        }
        let error = status_error(&answer);
        match error_code(&error) {
            Some(codes::ORDER_PAID) => Ok(CloseOutcome::AlreadyPaid),
            Some(codes::ORDER_CLOSED) => Ok(CloseOutcome::Closed),
            Some(codes::ORDER_NOT_EXIST | codes::RESOURCE_NOT_EXISTS) => Ok(CloseOutcome::NotFound),
            _ => Err(error),
        }
    }

    fn verify_webhook(
        &self,
        headers: &WebhookHeaders,
        body: &[u8],
    ) -> Result<GatewayEvent, WebhookRejection> {
        notify::verify_and_parse(
            &self.settings.platform_keys,
            self.settings.api_v3_key.as_bytes(),
            &self.settings.mchid,
            self.clock.now(),
            &self.nonces,
            headers,
            body,
        )
    }

    /// The platform key is the one the `Wechatpay-Serial` header names.
    fn webhook_evidence(&self, headers: &WebhookHeaders) -> crate::port::WebhookEvidence {
        let key = headers
            .get(SERIAL_HEADER)
            .and_then(|serial| std::str::from_utf8(serial).ok())
            .and_then(|serial| self.settings.platform_keys.get(serial));
        crate::port::WebhookEvidence::new("wechatpay", key, headers, &SIGNED_ANSWER_HEADERS)
    }

    fn webhook_reply(&self, verdict: WebhookVerdict<'_>) -> WebhookReply {
        notify::reply(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_written_in_beijing_time() {
        let time = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        assert_eq!(china_rfc3339(time), "2027-01-15T16:00:00+08:00");
    }

    #[test]
    fn failed_answers_map_to_our_errors() {
        let answer = |status: u16, body: &str| Answer {
            status,
            headers: WebhookHeaders::new(),
            body: body.as_bytes().to_vec(),
        };
        assert_eq!(
            status_error(&answer(
                400,
                r#"{"code":"ORDERPAID","message":"订单已支付"}"#
            )),
            GatewayError::Rejected {
                code: Some("ORDERPAID".to_owned()),
                message: "订单已支付".to_owned()
            }
        );
        assert_eq!(
            status_error(&answer(401, "{}")),
            GatewayError::Authentication
        );
        assert!(matches!(
            status_error(&answer(500, "")),
            GatewayError::Upstream(_)
        ));
    }
}
