//! The Alipay client: every call is one RSA2-signed form POST to the gateway, and every
//! answer is verified against Alipay's public key before it is read. Calls are keyed by our
//! own order number (`out_trade_no`) and refund number (`out_request_no`), so a repeated call
//! finds the first instead of doubling it, which is what makes retrying them safe.

use std::collections::BTreeMap;
use std::sync::Arc;

use aggregates::{ChargeId, Currency, GatewayRefundId, RefundId};
use chrono::{DateTime, Utc};
use reqwest::header::CONTENT_TYPE;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::form;
use super::notify::{self, china_time, money, TradeStatus};
use super::response::{self, ResponseError, Status};
use super::sign::{self, RSA2, SIGN_TYPE};
use super::wire::{self, codes, methods, sub_codes};
use crate::clock::Clock;
use crate::http;
use crate::port::{
    answer_protocols, charge_id_for_order_no, gateway_refund_id_for_refund_no, order_no_for,
    order_no_of_charge, refund_id_from_refund_no, refund_no_for, refund_no_of, ChargeRequest,
    ChargeState, CloseOutcome, GatewayError, GatewayEvent, IssuedCharge, IssuedRefund,
    PaymentGateway, QueryAnswer, RefundFacts, RefundRequest, RefundState, RetrievedCharge,
    RetrievedRefund, WebhookRejection, WebhookReply, WebhookVerdict,
};
use crate::yuan;
use crate::WebhookHeaders;

/// Alipay's production gateway.
pub const GATEWAY_URL_DEFAULT: &str = "https://openapi.alipay.com/gateway.do";
/// Alipay's limits on the text we send, in characters.
pub const SUBJECT_CHARS_MAX: usize = 256;
pub const BODY_CHARS_MAX: usize = 128;
pub const REFUND_REASON_CHARS_MAX: usize = 256;
/// Upstream messages are cut to this many characters before they reach our errors.
const UPSTREAM_MESSAGE_CHARS_MAX: usize = 300;

/// Everything the client needs; keys are parsed already, so a bad key fails at start-up.
pub struct AlipaySettings {
    /// E.g. "https://openapi.alipay.com/gateway.do".
    pub gateway_url: String,
    pub app_id: String,
    /// Signs our requests (the application private key).
    pub merchant_private_key: RsaPrivateKey,
    /// Verifies Alipay's answers and notifications.
    pub alipay_public_key: RsaPublicKey,
    /// Where Alipay posts notifications for the charges we create.
    pub notify_url: String,
    /// "alipay", or "sandbox" when the gateway is the in-process imitation.
    pub provider_name: &'static str,
}

pub struct AlipayClient {
    http: reqwest::Client,
    settings: AlipaySettings,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AlipayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlipayClient")
            .field("gateway_url", &self.settings.gateway_url)
            .field("app_id", &self.settings.app_id)
            .field("provider_name", &self.settings.provider_name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientBuildError {
    #[error("the Alipay gateway URL {0} is not an http(s) URL")]
    GatewayUrl(String),
    #[error("building the HTTP client failed: {0}")]
    Http(String),
}

impl AlipayClient {
    pub fn new(settings: AlipaySettings, clock: Arc<dyn Clock>) -> Result<Self, ClientBuildError> {
        match reqwest::Url::parse(&settings.gateway_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => return Err(ClientBuildError::GatewayUrl(settings.gateway_url)),
        }
        let http = http::build_client(http::CONNECT_TIMEOUT, http::REQUEST_TIMEOUT)
            .map_err(ClientBuildError::Http)?;
        Ok(Self {
            http,
            settings,
            clock,
        })
    }

    /// The signed form of a call.
    fn signed_params(
        &self,
        method: &str,
        biz_content: &impl Serialize,
        with_notify_url: bool,
    ) -> Result<BTreeMap<String, String>, GatewayError> {
        let biz_content = serde_json::to_string(biz_content)
            .map_err(|error| GatewayError::Protocol(error.to_string()))?;
        let mut params: BTreeMap<String, String> = [
            ("app_id", self.settings.app_id.as_str()),
            ("method", method),
            ("format", "JSON"),
            ("charset", "utf-8"),
            (SIGN_TYPE, RSA2),
            ("version", "1.0"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        params.insert(
            "timestamp".to_owned(),
            notify::china_time_text(self.clock.now()),
        );
        params.insert("biz_content".to_owned(), biz_content);
        if with_notify_url {
            params.insert("notify_url".to_owned(), self.settings.notify_url.clone());
        }
        sign::sign_request(&self.settings.merchant_private_key, &mut params);
        Ok(params)
    }

    /// Calls `method`; returns its verified answer's status and body, whatever the code, and
    /// the answer's exact bytes.
    async fn call_raw<T: DeserializeOwned>(
        &self,
        method: &str,
        biz_content: &impl Serialize,
        with_notify_url: bool,
    ) -> Result<(Status, Option<T>, Vec<u8>), GatewayError> {
        let form = form::encode(&self.signed_params(method, biz_content, with_notify_url)?);
        let answer = http::send(self.settings.provider_name, || {
            Ok(self
                .http
                .post(&self.settings.gateway_url)
                .header(
                    CONTENT_TYPE,
                    "application/x-www-form-urlencoded;charset=utf-8",
                )
                .body(form.clone()))
        })
        .await?;
        if !(200..300).contains(&answer.status) {
            return Err(GatewayError::Upstream(format!("HTTP {}", answer.status)));
        }
        let text = std::str::from_utf8(&answer.body)
            .map_err(|_| GatewayError::Protocol("the answer is not UTF-8".to_owned()))?;
        let raw =
            response::verify(&self.settings.alipay_public_key, method, text).map_err(|error| {
                match error {
                    ResponseError::Refused { code, message } => rejected(code, &message),
                    other => GatewayError::Protocol(other.to_string()),
                }
            })?;
        let status: Status = serde_json::from_str(raw)
            .map_err(|error| GatewayError::Protocol(format!("{method}: {error}")))?;
        if status.code != codes::SUCCESS {
            return Ok((status, None, answer.body));
        }
        let body = serde_json::from_str(raw)
            .map_err(|error| GatewayError::Protocol(format!("{method}: {error}")))?;
        Ok((status, Some(body), answer.body))
    }

    /// Calls `method` and requires success.
    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        biz_content: &impl Serialize,
        with_notify_url: bool,
    ) -> Result<T, GatewayError> {
        self.call_kept(method, biz_content, with_notify_url)
            .await
            .map(|(body, _)| body)
    }

    /// Calls `method`, requires success, and returns the answer with its exact bytes.
    async fn call_kept<T: DeserializeOwned>(
        &self,
        method: &str,
        biz_content: &impl Serialize,
        with_notify_url: bool,
    ) -> Result<(T, Vec<u8>), GatewayError> {
        match self.call_raw(method, biz_content, with_notify_url).await? {
            (_, Some(body), bytes) => Ok((body, bytes)),
            (status, None, _) => Err(status_error(&status)),
        }
    }

    /// The answer as evidence: signed inside its JSON, verified with Alipay's key.
    fn kept_answer(&self, protocol: &'static str, body: Vec<u8>) -> QueryAnswer {
        QueryAnswer::signed(
            protocol,
            body,
            &self.settings.alipay_public_key,
            &WebhookHeaders::new(),
            &[],
        )
    }

    async fn query_refund(
        &self,
        out_trade_no: &str,
        refund_no: &str,
    ) -> Result<(wire::RefundQueryResponse, Vec<u8>), GatewayError> {
        let request = wire::RefundQueryRequest {
            out_trade_no: out_trade_no.to_owned(),
            out_request_no: refund_no.to_owned(),
            query_options: vec!["gmt_refund_pay".to_owned()],
        };
        self.call_kept(methods::REFUND_QUERY, &request, false).await
    }
}

/// An unsuccessful answer as our error.
fn status_error(status: &Status) -> GatewayError {
    let message = truncated(
        status
            .sub_msg
            .as_deref()
            .filter(|text| !text.is_empty())
            .unwrap_or(&status.msg),
    );
    match status.code.as_str() {
        codes::UNAUTHORISED | codes::NO_PERMISSION => GatewayError::Authentication,
        codes::UNAVAILABLE => GatewayError::Upstream(message),
        codes::MISSING_ARGUMENT | codes::INVALID_ARGUMENT | codes::BUSINESS_FAILURE => rejected(
            status.sub_code.clone().unwrap_or(status.code.clone()),
            &message,
        ),
        other => GatewayError::Protocol(format!("unknown answer code {other}: {message}")),
    }
}

fn rejected(code: String, message: &str) -> GatewayError {
    GatewayError::Rejected {
        code: Some(truncated(&code)),
        message: truncated(message),
    }
}

fn truncated(text: &str) -> String {
    text.chars().take(UPSTREAM_MESSAGE_CHARS_MAX).collect()
}

fn protocol(error: impl std::fmt::Display) -> GatewayError {
    GatewayError::Protocol(error.to_string())
}

/// Alipay trades are in CNY only.
fn yuan_of(money: &aggregates::Money) -> Result<String, GatewayError> {
    if money.currency() != Currency::Cny {
        return Err(GatewayError::Rejected {
            code: Some("currency".to_owned()),
            message: format!("Alipay charges CNY only, not {}", money.currency().code()),
        });
    }
    yuan::yuan_from_fen(money.amount_minor()).map_err(protocol)
}

/// Whole minutes until `expires_at`, at least one: precreate only takes a relative expiry.
fn timeout_express(now: DateTime<Utc>, expires_at: DateTime<Utc>) -> String {
    let seconds = expires_at.signed_duration_since(now).num_seconds().max(60);
    format!("{}m", seconds.div_euclid(60))
}

/// A queried trade as the ledger sees it.
pub fn charge_state(trade: &wire::QueryResponse) -> Result<ChargeState, GatewayError> {
    let charge_id = charge_id_for_order_no(&trade.out_trade_no).ok_or_else(|| {
        protocol(format!(
            "trade {} is not one of our orders",
            trade.out_trade_no
        ))
    })?;
    let status = TradeStatus::parse(&trade.trade_status)
        .ok_or_else(|| protocol(format!("unknown trade_status {}", trade.trade_status)))?;
    let paid = matches!(status, TradeStatus::Success | TradeStatus::Finished);
    Ok(ChargeState {
        charge_id,
        order_no: trade.out_trade_no.clone(),
        amount: money(&trade.total_amount).map_err(protocol)?,
        paid,
        time_paid: trade
            .send_pay_date
            .as_deref()
            .filter(|_| paid)
            .map(china_time)
            .transpose()
            .map_err(protocol)?,
        transaction_no: trade.trade_no.clone().filter(|no| !no.is_empty()),
        failure_code: (status == TradeStatus::Closed).then(|| trade.trade_status.clone()),
        failure_message: None,
    })
}

/// How a queried refund stands, and its facts.
pub fn refund_lookup(
    charge_id: &ChargeId,
    gateway_refund_id: &GatewayRefundId,
    answer: &wire::RefundQueryResponse,
) -> Result<(RefundState, RefundFacts), GatewayError> {
    let refund_no = refund_no_of(gateway_refund_id);
    if answer.out_request_no.as_deref() != Some(refund_no) {
        return Err(rejected(
            sub_codes::TRADE_NOT_EXIST.to_owned(),
            &format!("no refund {refund_no} of {charge_id}"),
        ));
    }
    let succeeded = answer.refund_status.as_deref() == Some(wire::REFUND_SUCCESS);
    let amount = answer
        .refund_amount
        .as_deref()
        .ok_or_else(|| protocol("the refund has no refund_amount"))?;
    Ok((
        if succeeded {
            RefundState::Succeeded
        } else {
            RefundState::Pending
        },
        RefundFacts {
            gateway_refund_id: gateway_refund_id.clone(),
            charge_id: charge_id.clone(),
            charge_order_no: Some(order_no_of_charge(charge_id).to_owned()),
            refund_id: refund_id_from_refund_no(refund_no),
            amount: money(amount).map_err(protocol)?,
            succeeded_at: answer
                .gmt_refund_pay
                .as_deref()
                .filter(|_| succeeded)
                .map(china_time)
                .transpose()
                .map_err(protocol)?,
            failure_code: None,
            failure_message: None,
        },
    ))
}

#[async_trait::async_trait]
impl PaymentGateway for AlipayClient {
    fn provider(&self) -> &'static str {
        self.settings.provider_name
    }

    async fn create_charge(&self, request: &ChargeRequest) -> Result<IssuedCharge, GatewayError> {
        let order_no = order_no_for(&request.order_id);
        let asked = wire::PrecreateRequest {
            out_trade_no: order_no.clone(),
            total_amount: yuan_of(&request.amount)?,
            subject: request.subject.chars().take(SUBJECT_CHARS_MAX).collect(),
            body: Some(request.body.chars().take(BODY_CHARS_MAX).collect()),
            timeout_express: Some(timeout_express(self.clock.now(), request.expires_at)),
        };
        let created: wire::PrecreateResponse = self.call(methods::PRECREATE, &asked, true).await?;
        if created.out_trade_no != order_no || created.qr_code.is_empty() {
            return Err(protocol(format!(
                "precreate answered for {} without our QR code",
                created.out_trade_no
            )));
        }
        let charge_id = charge_id_for_order_no(&order_no)
            .ok_or_else(|| protocol("our order number makes no charge id"))?;
        Ok(IssuedCharge {
            charge_id,
            qr_code: created.qr_code,
            expires_at: request.expires_at,
        })
    }

    /// A trade nobody has scanned yet does not exist at Alipay: that is a `Rejected` error
    /// with code `ACQ.TRADE_NOT_EXIST`, which the reconciler reads as "not paid yet".
    async fn retrieve_charge(&self, charge_id: &ChargeId) -> Result<RetrievedCharge, GatewayError> {
        let asked = wire::TradeRef {
            out_trade_no: order_no_of_charge(charge_id).to_owned(),
        };
        let (trade, body): (wire::QueryResponse, _) =
            self.call_kept(methods::QUERY, &asked, false).await?;
        if trade.out_trade_no != asked.out_trade_no {
            return Err(protocol(format!(
                "asked for trade {}, got {}",
                asked.out_trade_no, trade.out_trade_no
            )));
        }
        Ok(RetrievedCharge {
            charge: charge_state(&trade)?,
            answer: self.kept_answer(answer_protocols::ALIPAY_TRADE_QUERY, body),
        })
    }

    async fn create_refund(&self, request: &RefundRequest) -> Result<IssuedRefund, GatewayError> {
        let out_trade_no = order_no_of_charge(&request.charge_id).to_owned();
        let refund_no = refund_no_for(&request.refund_id);
        let asked = wire::RefundRequest {
            out_trade_no: out_trade_no.clone(),
            refund_amount: yuan_of(&request.amount)?,
            out_request_no: refund_no.clone(),
            refund_reason: Some(
                request
                    .description
                    .chars()
                    .take(REFUND_REASON_CHARS_MAX)
                    .collect(),
            ),
        };
        let (refunded, body): (wire::RefundResponse, _) =
            self.call_kept(methods::REFUND, &asked, false).await?;
        let gateway_refund_id = gateway_refund_id_for_refund_no(&refund_no)
            .ok_or_else(|| protocol("our refund number makes no refund id"))?;
        // "Y": this call moved the money, and its answer is what says so. Otherwise it
        // repeated an earlier call (or the money is still moving): ask how that refund
        // stands, and the lookup's answer is what the state rests on.
        let (state, answer) = if refunded.fund_change.as_deref() == Some(wire::FUND_CHANGED) {
            (
                RefundState::Succeeded,
                self.kept_answer(answer_protocols::ALIPAY_REFUND, body),
            )
        } else {
            let (looked_up, body) = self.query_refund(&out_trade_no, &refund_no).await?;
            (
                refund_lookup(&request.charge_id, &gateway_refund_id, &looked_up)?.0,
                self.kept_answer(answer_protocols::ALIPAY_REFUND_QUERY, body),
            )
        };
        Ok(IssuedRefund {
            gateway_refund_id,
            state,
            answer,
        })
    }

    async fn retrieve_refund(
        &self,
        charge_id: &ChargeId,
        gateway_refund_id: &GatewayRefundId,
    ) -> Result<RetrievedRefund, GatewayError> {
        let (answer, body) = self
            .query_refund(
                order_no_of_charge(charge_id),
                refund_no_of(gateway_refund_id),
            )
            .await?;
        let (state, facts) = refund_lookup(charge_id, gateway_refund_id, &answer)?;
        Ok(RetrievedRefund {
            state,
            facts,
            answer: self.kept_answer(answer_protocols::ALIPAY_REFUND_QUERY, body),
        })
    }

    /// Alipay knows a refund by our refund number (`out_request_no`); it answers a number it
    /// never saw with an empty success, which `refund_lookup` reads as `TRADE_NOT_EXIST`.
    async fn find_refund(
        &self,
        charge_id: &ChargeId,
        refund_id: &RefundId,
    ) -> Result<Option<RetrievedRefund>, GatewayError> {
        let gateway_refund_id = gateway_refund_id_for_refund_no(&refund_no_for(refund_id))
            .ok_or_else(|| protocol("our refund number makes no refund id"))?;
        match self.retrieve_refund(charge_id, &gateway_refund_id).await {
            Ok(found) => Ok(Some(found)),
            Err(GatewayError::Rejected { code, .. })
                if code.as_deref() == Some(sub_codes::TRADE_NOT_EXIST) =>
            {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    async fn close_charge(&self, charge_id: &ChargeId) -> Result<CloseOutcome, GatewayError> {
        let asked = wire::TradeRef {
            out_trade_no: order_no_of_charge(charge_id).to_owned(),
        };
        let (status, closed, _) = self
            .call_raw::<wire::TradeRef>(methods::CLOSE, &asked, false)
            .await?;
        if closed.is_some() {
            return Ok(CloseOutcome::Closed);
        }
        match status.sub_code.as_deref() {
            Some(sub_codes::TRADE_NOT_EXIST) => Ok(CloseOutcome::NotFound),
            // Paid, finished or closed already: the trade tells which.
            Some(sub_codes::TRADE_STATUS_ERROR) => {
                let retrieved = self.retrieve_charge(charge_id).await?;
                Ok(if retrieved.charge.paid {
                    CloseOutcome::AlreadyPaid
                } else {
                    CloseOutcome::Closed
                })
            }
            _ => Err(status_error(&status)),
        }
    }

    fn verify_webhook(
        &self,
        _headers: &WebhookHeaders,
        body: &[u8],
    ) -> Result<GatewayEvent, WebhookRejection> {
        notify::verify_and_parse(
            &self.settings.alipay_public_key,
            &self.settings.app_id,
            body,
        )
    }

    /// Alipay signs inside the form body (`sign`): no header carries the signature.
    fn webhook_evidence(&self, headers: &WebhookHeaders) -> crate::port::WebhookEvidence {
        crate::port::WebhookEvidence::new(
            "alipay",
            Some(&self.settings.alipay_public_key),
            headers,
            &[],
        )
    }

    fn webhook_reply(&self, verdict: WebhookVerdict<'_>) -> WebhookReply {
        notify::reply(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_whole_minutes_and_at_least_one() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let later =
            |seconds: i64| DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap_or_default();
        assert_eq!(timeout_express(now, later(900)), "15m");
        assert_eq!(timeout_express(now, later(959)), "15m");
        assert_eq!(timeout_express(now, later(10)), "1m");
        assert_eq!(timeout_express(now, later(-10)), "1m");
    }

    #[test]
    fn answer_codes_map_to_our_errors() {
        let status = |code: &str, sub_code: Option<&str>| Status {
            code: code.to_owned(),
            msg: "Business Failed".to_owned(),
            sub_code: sub_code.map(str::to_owned),
            sub_msg: Some("交易不存在".to_owned()),
        };
        assert_eq!(
            status_error(&status("40004", Some("ACQ.TRADE_NOT_EXIST"))),
            GatewayError::Rejected {
                code: Some("ACQ.TRADE_NOT_EXIST".to_owned()),
                message: "交易不存在".to_owned()
            }
        );
        assert_eq!(
            status_error(&status("40006", None)),
            GatewayError::Authentication
        );
        assert!(matches!(
            status_error(&status("20000", None)),
            GatewayError::Upstream(_)
        ));
        assert!(matches!(
            status_error(&status("99999", None)),
            GatewayError::Protocol(_)
        ));
    }
}
