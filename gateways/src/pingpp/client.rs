//! The Ping++ HTTP client: creates and reads charges and refunds over the REST API and verifies
//! webhooks. Creating is never blindly retried, because a retry after the gateway received
//! the request could open a second payable charge for one order.

use std::time::{Duration, Instant};

use aggregates::{Channel, ChargeId, GatewayRefundId, RefundId};
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::refund_list::{self, PageStep};
use super::signature;
use super::webhook::{self, REFUND_ID_METADATA_KEY};
use super::wire::{
    self, AppRef, CreateChargeRequest, CreateRefundRequest, REQUEST_SIGNATURE_HEADER,
    REQUEST_TIMESTAMP_HEADER,
};
use crate::port::{
    answer_protocols, order_no_for, ChargeRequest, CloseOutcome, GatewayError, GatewayEvent,
    IssuedCharge, IssuedRefund, PaymentGateway, QueryAnswer, RefundRequest, RefundState,
    RetrievedCharge, RetrievedRefund, WebhookRejection, WebhookReply, WebhookVerdict,
};
use crate::Secret;
use crate::WebhookHeaders;

/// How long establishing a connection (TCP and TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a whole call may take, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads are repeated on timeouts, failed connections and 502/503/504: three tries in all.
pub const READ_ATTEMPTS_MAX: u32 = 3;
/// Creates are repeated once, and only when no connection could be made, so the gateway
/// cannot have seen the first try.
pub const CREATE_ATTEMPTS_MAX: u32 = 2;
/// The wait before the first repeat; it doubles before each further one (200 ms, 400 ms).
pub const RETRY_BACKOFF_INITIAL: Duration = Duration::from_millis(200);

/// Ping++'s limits on charge and refund text, in characters.
pub const SUBJECT_CHARS_MAX: usize = 32;
pub const BODY_CHARS_MAX: usize = 128;
pub const PRODUCT_ID_CHARS_MAX: usize = 32;
pub const REFUND_DESCRIPTION_CHARS_MAX: usize = 255;

/// Upstream error messages are cut to this many characters before they reach our errors.
const UPSTREAM_MESSAGE_CHARS_MAX: usize = 300;

/// The metadata key carrying our order id on every charge.
pub const ORDER_ID_METADATA_KEY: &str = "order_id";

/// Everything the client needs. Keys are parsed already, so a bad key fails at start-up.
pub struct PingppSettings {
    /// E.g. "https://api.pingxx.com/v1"; a trailing slash is ignored.
    pub api_base: String,
    pub app_id: String,
    /// The secret API key (`sk_live_...`); sent only in the `Authorization` header.
    pub api_key: Secret,
    /// Signs POST requests when request signing is enabled in the Ping++ dashboard.
    pub merchant_key: Option<RsaPrivateKey>,
    /// Ping++'s public key, verifying webhooks.
    pub webhook_public_key: RsaPublicKey,
    /// "pingpp" or "sandbox".
    pub provider_name: &'static str,
}

// The derived Debug of RSA private keys prints their secret numbers: never use it.
impl std::fmt::Debug for PingppSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PingppSettings")
            .field("api_base", &self.api_base)
            .field("app_id", &self.app_id)
            .field("api_key", &self.api_key)
            .field("request_signing", &self.merchant_key.is_some())
            .field("provider_name", &self.provider_name)
            .finish_non_exhaustive()
    }
}

/// Why a client could not be built from its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientBuildError {
    #[error("the API base `{0}` is not an http:// or https:// URL without query")]
    ApiBase(String),
    #[error("the API key contains characters not allowed in an HTTP header")]
    ApiKey,
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// The bytes a merchant signs for a request: the exact body, the request URI (path and
/// `?query` as sent) and the unix-seconds timestamp, concatenated without separators.
pub fn request_signing_message(body: &[u8], uri_path_and_query: &str, timestamp: i64) -> Vec<u8> {
    let timestamp = timestamp.to_string();
    let mut message = Vec::with_capacity(body.len() + uri_path_and_query.len() + timestamp.len());
    message.extend_from_slice(body);
    message.extend_from_slice(uri_path_and_query.as_bytes());
    message.extend_from_slice(timestamp.as_bytes());
    message
}

/// A Ping++ (or sandbox) gateway spoken to over HTTP.
pub struct PingppClient {
    http: reqwest::Client,
    /// Without a trailing slash.
    api_base: String,
    app_id: String,
    api_key: Secret,
    /// `Bearer <key>`, marked sensitive so HTTP-level debugging never prints it.
    authorization: HeaderValue,
    merchant_key: Option<RsaPrivateKey>,
    webhook_public_key: RsaPublicKey,
    provider_name: &'static str,
}

impl std::fmt::Debug for PingppClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PingppClient")
            .field("api_base", &self.api_base)
            .field("app_id", &self.app_id)
            .field("api_key", &self.api_key)
            .field("request_signing", &self.merchant_key.is_some())
            .field("provider_name", &self.provider_name)
            .finish_non_exhaustive()
    }
}

/// When a failed try may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryPolicy {
    /// Safe to repeat: nothing changes on the gateway.
    Read,
    /// Creates something: repeated only if the request never reached the gateway.
    Create,
}

impl RetryPolicy {
    fn attempts_max(self) -> u32 {
        match self {
            Self::Read => READ_ATTEMPTS_MAX,
            Self::Create => CREATE_ATTEMPTS_MAX,
        }
    }

    fn repeats(self, cause: Cause) -> bool {
        match self {
            Self::Read => matches!(cause, Cause::Connect | Cause::Timeout | Cause::Overloaded),
            Self::Create => cause == Cause::Connect,
        }
    }
}

/// What went wrong with one try, for deciding whether to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// No connection was established: the gateway saw nothing.
    Connect,
    /// The gateway may or may not have acted.
    Timeout,
    /// 502, 503 or 504: a proxy in front of the gateway gave up.
    Overloaded,
    /// Repeating would give the same answer.
    Final,
}

/// One failed try.
#[derive(Debug)]
struct Failure {
    status: Option<StatusCode>,
    cause: Cause,
    error: GatewayError,
}

impl PingppClient {
    pub fn new(settings: PingppSettings) -> Result<Self, ClientBuildError> {
        Self::with_timeouts(settings, CONNECT_TIMEOUT, REQUEST_TIMEOUT)
    }

    /// Like `new`, with other timeouts (tests use short ones).
    pub(crate) fn with_timeouts(
        settings: PingppSettings,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, ClientBuildError> {
        let api_base = settings.api_base.trim_end_matches('/').to_owned();
        match Url::parse(&api_base) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.query().is_none()
                    && url.fragment().is_none() => {}
            _ => return Err(ClientBuildError::ApiBase(api_base)),
        }
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {}", settings.api_key.expose()))
                .map_err(|_| ClientBuildError::ApiKey)?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            // A redirect would be a misconfigured base URL; following it could carry the key
            // somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| ClientBuildError::Http(error.to_string()))?;
        Ok(Self {
            http,
            api_base,
            app_id: settings.app_id,
            api_key: settings.api_key,
            authorization,
            merchant_key: settings.merchant_key,
            webhook_public_key: settings.webhook_public_key,
            provider_name: settings.provider_name,
        })
    }

    /// The charge we ask Ping++ for.
    fn charge_body(&self, request: &ChargeRequest) -> CreateChargeRequest {
        let order_no = order_no_for(&request.order_id);
        let mut metadata = Map::new();
        metadata.insert(
            ORDER_ID_METADATA_KEY.to_owned(),
            Value::String(request.order_id.to_string()),
        );
        let mut extra = Map::new();
        if request.channel == Channel::WxPubQr {
            // WeChat's QR mode wants a product id; one per order keeps each QR code distinct.
            extra.insert(
                "product_id".to_owned(),
                Value::String(truncated(&order_no, PRODUCT_ID_CHARS_MAX)),
            );
        }
        CreateChargeRequest {
            order_no,
            app: AppRef {
                id: self.app_id.clone(),
            },
            channel: request.channel.as_str().to_owned(),
            amount: request.amount.amount_minor(),
            client_ip: request.client_ip.clone(),
            currency: request.amount.currency().code().to_ascii_lowercase(),
            subject: truncated(&request.subject, SUBJECT_CHARS_MAX),
            body: truncated(&request.body, BODY_CHARS_MAX),
            time_expire: Some(request.expires_at.timestamp()),
            metadata,
            extra,
        }
    }

    /// Calls `path` (below the API base), repeating failed tries as `policy` allows.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        policy: RetryPolicy,
    ) -> Result<T, GatewayError> {
        self.call_kept(method, path, body, policy)
            .await
            .map(|(value, _)| value)
    }

    /// Like [`Self::call`], also returning the answer's exact bytes.
    async fn call_kept<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        policy: RetryPolicy,
    ) -> Result<(T, Vec<u8>), GatewayError> {
        let url = Url::parse(&format!("{}{path}", self.api_base))
            .map_err(|error| GatewayError::Protocol(format!("bad request URL: {error}")))?;
        let request_uri = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let mut attempt: u32 = 1;
        let mut backoff = RETRY_BACKOFF_INITIAL;
        loop {
            let started = Instant::now();
            let outcome = self
                .try_once::<T>(&method, &url, &request_uri, body.as_deref())
                .await;
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            match &outcome {
                Ok((status, _, _)) => tracing::info!(
                    provider = self.provider_name,
                    method = %method,
                    path = url.path(),
                    status = status.as_u16(),
                    elapsed_ms,
                    attempt,
                    "gateway call"
                ),
                Err(failure) => tracing::info!(
                    provider = self.provider_name,
                    method = %method,
                    path = url.path(),
                    status = failure.status.map(|status| status.as_u16()),
                    elapsed_ms,
                    attempt,
                    error = failure.error.code(),
                    "gateway call failed"
                ),
            }
            match outcome {
                Ok((_, value, bytes)) => return Ok((value, bytes)),
                Err(failure) => {
                    if attempt >= policy.attempts_max() || !policy.repeats(failure.cause) {
                        return Err(failure.error);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// One try: sends, reads the whole answer, maps it.
    async fn try_once<T: DeserializeOwned>(
        &self,
        method: &Method,
        url: &Url,
        request_uri: &str,
        body: Option<&[u8]>,
    ) -> Result<(StatusCode, T, Vec<u8>), Failure> {
        let mut builder = self
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
            if let Some(merchant_key) = &self.merchant_key {
                // Signed per try: each carries its own timestamp.
                let timestamp = Utc::now().timestamp();
                let message = request_signing_message(body, request_uri, timestamp);
                builder = builder
                    .header(REQUEST_TIMESTAMP_HEADER, timestamp.to_string())
                    .header(
                        REQUEST_SIGNATURE_HEADER,
                        signature::sign(merchant_key, &message),
                    );
            }
        }
        let response = builder
            .send()
            .await
            .map_err(|error| self.transport_failure(&error, None))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.transport_failure(&error, Some(status)))?;
        if !status.is_success() {
            return Err(self.status_failure(status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map(|value| (status, value, bytes.to_vec()))
            .map_err(|error| Failure {
                status: Some(status),
                cause: Cause::Final,
                error: GatewayError::Protocol(format!("unreadable answer: {error}")),
            })
    }

    fn transport_failure(&self, error: &reqwest::Error, status: Option<StatusCode>) -> Failure {
        // A connect timeout is both; it is the connection that failed, so nothing was sent.
        let (cause, error) = if error.is_connect() {
            (
                Cause::Connect,
                GatewayError::Unreachable(self.scrubbed(&error_chain(error))),
            )
        } else if error.is_timeout() {
            (Cause::Timeout, GatewayError::Timeout)
        } else {
            (
                Cause::Final,
                GatewayError::Unreachable(self.scrubbed(&error_chain(error))),
            )
        };
        Failure {
            status,
            cause,
            error,
        }
    }

    fn status_failure(&self, status: StatusCode, body: &[u8]) -> Failure {
        let detail = serde_json::from_slice::<wire::ErrorBody>(body)
            .ok()
            .map(|body| body.error);
        let message = detail
            .as_ref()
            .map(|detail| self.scrubbed(&detail.message))
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        let upstream = || GatewayError::Upstream(format!("HTTP {}: {message}", status.as_u16()));
        let (cause, error) = match status.as_u16() {
            401 => (Cause::Final, GatewayError::Authentication),
            429 => (Cause::Final, upstream()),
            502..=504 => (Cause::Overloaded, upstream()),
            500..=599 => (Cause::Final, upstream()),
            400..=499 => (
                Cause::Final,
                GatewayError::Rejected {
                    code: detail
                        .map(|detail| detail.code.unwrap_or(detail.error_type))
                        .filter(|code| !code.is_empty())
                        .map(|code| self.scrubbed(&code)),
                    message,
                },
            ),
            other => (
                Cause::Final,
                GatewayError::Protocol(format!("unexpected HTTP {other}")),
            ),
        };
        Failure {
            status: Some(status),
            cause,
            error,
        }
    }

    /// Upstream text, shortened and with the API key blotted out should the gateway echo it.
    fn scrubbed(&self, text: &str) -> String {
        let key = self.api_key.expose();
        // Blot out before cutting: a cut through the key would leave part of it behind.
        if key.is_empty() {
            truncated(text, UPSTREAM_MESSAGE_CHARS_MAX)
        } else {
            truncated(&text.replace(key, "***"), UPSTREAM_MESSAGE_CHARS_MAX)
        }
    }
}

#[async_trait::async_trait]
impl PaymentGateway for PingppClient {
    fn provider(&self) -> &'static str {
        self.provider_name
    }

    async fn create_charge(&self, request: &ChargeRequest) -> Result<IssuedCharge, GatewayError> {
        let charge_body = self.charge_body(request);
        let bytes = serde_json::to_vec(&charge_body)
            .map_err(|error| GatewayError::Protocol(error.to_string()))?;
        let charge: wire::Charge = self
            .call(Method::POST, "/charges", Some(bytes), RetryPolicy::Create)
            .await?;
        issued_charge(&charge, &charge_body, request)
    }

    async fn retrieve_charge(&self, charge_id: &ChargeId) -> Result<RetrievedCharge, GatewayError> {
        let path = format!("/charges/{}", charge_id.as_str());
        let (charge, body): (wire::Charge, _) = self
            .call_kept(Method::GET, &path, None, RetryPolicy::Read)
            .await?;
        if charge.id != charge_id.as_str() {
            return Err(GatewayError::Protocol(format!(
                "asked for charge {charge_id}, got {}",
                charge.id
            )));
        }
        Ok(RetrievedCharge {
            charge: webhook::charge_state(&charge).map_err(GatewayError::Protocol)?,
            answer: QueryAnswer::unsigned(answer_protocols::PINGPP_CHARGE, body),
        })
    }

    async fn create_refund(&self, request: &RefundRequest) -> Result<IssuedRefund, GatewayError> {
        let mut metadata = Map::new();
        metadata.insert(
            REFUND_ID_METADATA_KEY.to_owned(),
            Value::String(request.refund_id.to_string()),
        );
        let refund_body = CreateRefundRequest {
            amount: Some(request.amount.amount_minor()),
            description: truncated(&request.description, REFUND_DESCRIPTION_CHARS_MAX),
            metadata,
        };
        let bytes = serde_json::to_vec(&refund_body)
            .map_err(|error| GatewayError::Protocol(error.to_string()))?;
        let path = format!("/charges/{}/refunds", request.charge_id.as_str());
        let (refund, body): (wire::Refund, _) = self
            .call_kept(Method::POST, &path, Some(bytes), RetryPolicy::Create)
            .await?;
        Ok(IssuedRefund {
            gateway_refund_id: refund_id_of(&refund)?,
            state: refund_state(&refund)?,
            answer: QueryAnswer::unsigned(answer_protocols::PINGPP_REFUND, body),
        })
    }

    async fn retrieve_refund(
        &self,
        charge_id: &ChargeId,
        gateway_refund_id: &GatewayRefundId,
    ) -> Result<RetrievedRefund, GatewayError> {
        let path = format!(
            "/charges/{}/refunds/{}",
            charge_id.as_str(),
            gateway_refund_id.as_str()
        );
        let (refund, body): (wire::Refund, _) = self
            .call_kept(Method::GET, &path, None, RetryPolicy::Read)
            .await?;
        if refund.id != gateway_refund_id.as_str() || refund.charge != charge_id.as_str() {
            return Err(GatewayError::Protocol(format!(
                "asked for refund {gateway_refund_id} of {charge_id}, got {} of {}",
                refund.id, refund.charge
            )));
        }
        let state = refund_state(&refund)?;
        let facts = webhook::refund_facts(&refund).map_err(GatewayError::Protocol)?;
        Ok(RetrievedRefund {
            state,
            facts,
            answer: QueryAnswer::unsigned(answer_protocols::PINGPP_REFUND, body),
        })
    }

    /// Ping++ names refunds by its own ids, so ours is found by walking the charge's refund
    /// list for the refund id our request put in the refund's metadata.
    async fn find_refund(
        &self,
        charge_id: &ChargeId,
        refund_id: &RefundId,
    ) -> Result<Option<RetrievedRefund>, GatewayError> {
        let mut cursor: Option<String> = None;
        for _ in 0..refund_list::PAGES_MAX {
            let path = refund_list::page_path(charge_id, cursor.as_deref())
                .map_err(GatewayError::Protocol)?;
            let page: wire::RefundList = self
                .call(Method::GET, &path, None, RetryPolicy::Read)
                .await?;
            match refund_list::step(&page, charge_id, refund_id).map_err(GatewayError::Protocol)? {
                // Found by our id; what is kept as evidence is the refund's own answer, as
                // for every refund looked up (a list page is no answer about one refund).
                PageStep::Found(refund) => {
                    let gateway_refund_id = GatewayRefundId::parse(&refund.id)
                        .map_err(|error| GatewayError::Protocol(error.to_string()))?;
                    return self
                        .retrieve_refund(charge_id, &gateway_refund_id)
                        .await
                        .map(Some);
                }
                PageStep::Next(last) => cursor = Some(last),
                PageStep::Exhausted => return Ok(None),
            }
        }
        Err(GatewayError::Protocol(format!(
            "the refund list of {charge_id} runs past {} pages",
            refund_list::PAGES_MAX
        )))
    }

    async fn close_charge(&self, charge_id: &ChargeId) -> Result<CloseOutcome, GatewayError> {
        let path = format!("/charges/{}/reverse", charge_id.as_str());
        // Revoking twice revokes once: safe to repeat like a read.
        let outcome = self
            .call::<wire::Charge>(Method::POST, &path, Some(b"{}".to_vec()), RetryPolicy::Read)
            .await;
        match outcome {
            Ok(charge) if charge.paid => Ok(CloseOutcome::AlreadyPaid),
            Ok(_) => Ok(CloseOutcome::Closed),
            Err(GatewayError::Rejected { code, .. })
                if code.as_deref() == Some(wire::NOT_FOUND_CODE) =>
            {
                Ok(CloseOutcome::NotFound)
            }
            Err(error) => Err(error),
        }
    }

    fn verify_webhook(
        &self,
        headers: &WebhookHeaders,
        body: &[u8],
    ) -> Result<GatewayEvent, WebhookRejection> {
        webhook::verify_and_parse(&self.webhook_public_key, headers, body)
    }

    fn webhook_evidence(&self, headers: &WebhookHeaders) -> crate::port::WebhookEvidence {
        crate::port::WebhookEvidence::new(
            "pingpp",
            Some(&self.webhook_public_key),
            headers,
            &[wire::WEBHOOK_SIGNATURE_HEADER],
        )
    }

    fn webhook_reply(&self, verdict: WebhookVerdict<'_>) -> WebhookReply {
        webhook::reply(verdict)
    }
}

/// Checks the created charge is the one we asked for and takes out its QR credential.
fn issued_charge(
    charge: &wire::Charge,
    asked: &CreateChargeRequest,
    request: &ChargeRequest,
) -> Result<IssuedCharge, GatewayError> {
    let charge_id = ChargeId::parse(&charge.id)
        .map_err(|error| GatewayError::Protocol(format!("charge id: {error}")))?;
    if charge.order_no != asked.order_no || charge.amount != asked.amount {
        return Err(GatewayError::Protocol(format!(
            "charge {charge_id} is for order {} and amount {}, not the one we asked for",
            charge.order_no, charge.amount
        )));
    }
    let channel = request.channel.as_str();
    let qr_code = charge
        .credential
        .get(channel)
        .and_then(Value::as_str)
        .filter(|credential| !credential.is_empty())
        .ok_or_else(|| {
            GatewayError::Protocol(format!("charge {charge_id} has no {channel} credential"))
        })?
        .to_owned();
    // The gateway may shorten the expiry (WeChat allows two hours at most): the QR code is
    // payable until the earlier of the two.
    let expires_at = charge
        .time_expire
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .map_or(request.expires_at, |gateway| {
            gateway.min(request.expires_at)
        });
    Ok(IssuedCharge {
        charge_id,
        qr_code,
        expires_at,
    })
}

fn refund_id_of(refund: &wire::Refund) -> Result<GatewayRefundId, GatewayError> {
    GatewayRefundId::parse(&refund.id)
        .map_err(|error| GatewayError::Protocol(format!("refund id: {error}")))
}

/// How a Ping++ refund object says the refund stands.
pub(crate) fn refund_state(refund: &wire::Refund) -> Result<RefundState, GatewayError> {
    match refund.status.as_str() {
        "pending" => Ok(RefundState::Pending),
        "succeeded" => Ok(RefundState::Succeeded),
        "failed" => Ok(RefundState::Failed),
        other => Err(GatewayError::Protocol(format!(
            "refund {} has an unknown status `{other}`",
            refund.id
        ))),
    }
}

/// The first `chars_max` characters (not bytes: subjects are often Chinese).
fn truncated(text: &str, chars_max: usize) -> String {
    text.chars().take(chars_max).collect()
}

/// An error and its causes on one line ("error sending request: ...: connection refused"),
/// without the URL.
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use aggregates::{Currency, Money, OrderId, RefundId};
    use axum::body::Bytes;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, Uri};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use serde_json::json;

    use super::*;
    use crate::pingpp::webhook::shared_test_key;

    const API_KEY: &str = "sk_test_k9Xq2bT5secretvalue";

    /// A small imitation of the Ping++ API: checks what a real one checks and answers with
    /// canned objects, or with the statuses scripted for the next calls.
    struct Imitation {
        api_key: String,
        /// When set, POSTs must be signed by this key; when not, they must carry no signature.
        merchant_key: Option<RsaPublicKey>,
        script: Mutex<VecDeque<(StatusCode, String)>>,
        calls: AtomicUsize,
        last_body: Mutex<Option<Value>>,
        with_credential: bool,
        delay: Duration,
    }

    impl Imitation {
        fn new() -> Self {
            Self {
                api_key: API_KEY.to_owned(),
                merchant_key: Some(shared_test_key().to_public_key()),
                script: Mutex::new(VecDeque::new()),
                calls: AtomicUsize::new(0),
                last_body: Mutex::new(None),
                with_credential: true,
                delay: Duration::ZERO,
            }
        }

        fn scripted(self, answers: &[(StatusCode, &str)]) -> Self {
            *self.script.lock().unwrap() = answers
                .iter()
                .map(|(status, message)| (*status, (*message).to_owned()))
                .collect();
            self
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        fn last_body(&self) -> Value {
            self.last_body
                .lock()
                .unwrap()
                .clone()
                .expect("a request body")
        }

        /// Counts the call, then checks it as Ping++ would; `Err` is the answer to give instead.
        async fn admit(
            &self,
            headers: &HeaderMap,
            uri: &Uri,
            body: Option<&[u8]>,
        ) -> Result<(), Response> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            let expected = format!("Bearer {}", self.api_key);
            if headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(&expected) {
                return Err(error_answer(
                    StatusCode::UNAUTHORIZED,
                    "authentication_error",
                    "No such API key",
                ));
            }
            if let Some(body) = body {
                let signature = headers
                    .get(REQUEST_SIGNATURE_HEADER)
                    .and_then(|v| v.to_str().ok());
                let timestamp = headers
                    .get(REQUEST_TIMESTAMP_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i64>().ok());
                match (&self.merchant_key, signature, timestamp) {
                    (Some(key), Some(signature), Some(timestamp)) => {
                        let uri = uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
                        let message = request_signing_message(body, uri, timestamp);
                        if signature::verify(key, &message, signature).is_err()
                            || (Utc::now().timestamp() - timestamp).abs() > 300
                        {
                            return Err(error_answer(
                                StatusCode::UNAUTHORIZED,
                                "authentication_error",
                                "bad request signature",
                            ));
                        }
                    }
                    (None, None, None) => {}
                    _ => {
                        return Err(error_answer(
                            StatusCode::BAD_REQUEST,
                            "invalid_request_error",
                            "request signature headers are wrong",
                        ))
                    }
                }
                *self.last_body.lock().unwrap() = Some(serde_json::from_slice(body).unwrap());
            }
            let scripted = self.script.lock().unwrap().pop_front();
            if let Some((status, message)) = scripted {
                return Err(error_answer(status, "invalid_request_error", &message));
            }
            Ok(())
        }
    }

    fn error_answer(status: StatusCode, error_type: &str, message: &str) -> Response {
        let body = json!({"error": {"type": error_type, "message": message, "code": "scripted"}});
        (status, Json(body)).into_response()
    }

    async fn create_charge_endpoint(
        State(imitation): State<Arc<Imitation>>,
        headers: HeaderMap,
        uri: Uri,
        body: Bytes,
    ) -> Response {
        if let Err(answer) = imitation.admit(&headers, &uri, Some(&body)).await {
            return answer;
        }
        let asked: CreateChargeRequest = serde_json::from_slice(&body).unwrap();
        let mut credential = Map::new();
        credential.insert("object".to_owned(), json!("credential"));
        if imitation.with_credential {
            let url = format!("https://qr.example/{}", asked.order_no);
            credential.insert(asked.channel.clone(), json!(url));
        }
        Json(json!({
            "id": "ch_L8qn10mLmr1GS8e5OODmHaL4",
            "object": "charge",
            "created": 1_700_000_000,
            "livemode": false,
            "paid": false,
            "refunded": false,
            "app": asked.app.id,
            "channel": asked.channel,
            "order_no": asked.order_no,
            "client_ip": asked.client_ip,
            "amount": asked.amount,
            "amount_settle": asked.amount,
            "currency": asked.currency,
            "subject": asked.subject,
            "body": asked.body,
            "extra": asked.extra,
            "time_paid": null,
            "time_expire": asked.time_expire,
            "transaction_no": null,
            "refunds": {"object": "list", "data": []},
            "amount_refunded": 0,
            "failure_code": null,
            "failure_msg": null,
            "metadata": asked.metadata,
            "credential": credential,
        }))
        .into_response()
    }

    async fn retrieve_charge_endpoint(
        State(imitation): State<Arc<Imitation>>,
        Path(charge_id): Path<String>,
        headers: HeaderMap,
        uri: Uri,
    ) -> Response {
        if let Err(answer) = imitation.admit(&headers, &uri, None).await {
            return answer;
        }
        Json(json!({
            "id": charge_id,
            "object": "charge",
            "paid": true,
            "channel": "alipay_qr",
            "order_no": "0123456789abcdef0123456789abcdef",
            "amount": 2900,
            "currency": "cny",
            "time_paid": 1_700_000_123,
            "transaction_no": "2023111522001",
            "failure_code": null,
            "failure_msg": null,
            "credential": {},
        }))
        .into_response()
    }

    async fn create_refund_endpoint(
        State(imitation): State<Arc<Imitation>>,
        Path(charge_id): Path<String>,
        headers: HeaderMap,
        uri: Uri,
        body: Bytes,
    ) -> Response {
        if let Err(answer) = imitation.admit(&headers, &uri, Some(&body)).await {
            return answer;
        }
        let asked: CreateRefundRequest = serde_json::from_slice(&body).unwrap();
        Json(json!({
            "id": "re_SG0WDOXz5K8SCaj5GKO4abc1",
            "object": "refund",
            "amount": asked.amount,
            "status": "pending",
            "charge": charge_id,
            "description": asked.description,
            "metadata": asked.metadata,
        }))
        .into_response()
    }

    async fn retrieve_refund_endpoint(
        State(imitation): State<Arc<Imitation>>,
        Path((charge_id, refund_id)): Path<(String, String)>,
        headers: HeaderMap,
        uri: Uri,
    ) -> Response {
        if let Err(answer) = imitation.admit(&headers, &uri, None).await {
            return answer;
        }
        // The listed refund carrying our id answers as it does in the list below.
        let ours = if refund_id == "re_list_3" {
            LISTED_REFUND_ID
        } else {
            "6f1cb858-c6ce-45dd-a2e8-1102a0482299"
        };
        Json(json!({
            "id": refund_id,
            "object": "refund",
            "amount": 900,
            "status": "succeeded",
            "charge": charge_id,
            "charge_order_no": "0123456789abcdef0123456789abcdef",
            "time_succeed": 1_700_000_456,
            "metadata": {"refund_id": ours},
        }))
        .into_response()
    }

    /// Lists refunds of a charge newest first, in pages of `limit` after `starting_after`:
    /// 250 refunds `re_list_<n>`, only `re_list_3` (an old one, on the third page of 100)
    /// carrying the refund id below in its metadata.
    async fn list_refunds_endpoint(
        State(imitation): State<Arc<Imitation>>,
        Path(charge_id): Path<String>,
        headers: HeaderMap,
        uri: Uri,
    ) -> Response {
        if let Err(answer) = imitation.admit(&headers, &uri, None).await {
            return answer;
        }
        let query: std::collections::HashMap<String, String> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        let limit: usize = query["limit"].parse().unwrap();
        let newest_first: Vec<usize> = (1..=250).rev().collect();
        let start = query.get("starting_after").map_or(0, |after| {
            newest_first
                .iter()
                .position(|n| format!("re_list_{n}") == *after)
                .unwrap()
                + 1
        });
        let page: Vec<Value> = newest_first[start..]
            .iter()
            .take(limit)
            .map(|n| {
                let metadata = if *n == 3 {
                    json!({"refund_id": LISTED_REFUND_ID})
                } else {
                    json!({})
                };
                json!({
                    "id": format!("re_list_{n}"), "object": "refund", "amount": 100,
                    "status": "succeeded", "charge": charge_id, "time_succeed": 1_700_000_456,
                    "metadata": metadata,
                })
            })
            .collect();
        let has_more = start + page.len() < newest_first.len();
        Json(json!({"object": "list", "url": uri.path(), "has_more": has_more, "data": page}))
            .into_response()
    }

    const LISTED_REFUND_ID: &str = "0b8e39f5-4a3c-4d5e-9f00-7d1f2e3a4b5c";

    /// Revokes: `ch_paid...` was paid first, `ch_missing...` does not exist.
    async fn reverse_charge_endpoint(
        State(imitation): State<Arc<Imitation>>,
        Path(charge_id): Path<String>,
        headers: HeaderMap,
        uri: Uri,
        body: Bytes,
    ) -> Response {
        if let Err(answer) = imitation.admit(&headers, &uri, Some(&body)).await {
            return answer;
        }
        if charge_id.starts_with("ch_missing") {
            let body = json!({"error": {"type": "invalid_request_error", "message": "No such charge", "code": wire::NOT_FOUND_CODE}});
            return (StatusCode::NOT_FOUND, Json(body)).into_response();
        }
        Json(json!({
            "id": charge_id,
            "object": "charge",
            "paid": charge_id.starts_with("ch_paid"),
            "reversed": true,
            "channel": "alipay_qr",
            "order_no": "0123456789abcdef0123456789abcdef",
            "amount": 2900,
            "currency": "cny",
            "credential": {},
        }))
        .into_response()
    }

    /// Serves `imitation` on a free loopback port; returns the API base.
    async fn serve(imitation: Arc<Imitation>) -> String {
        let router = Router::new()
            .route("/v1/charges", post(create_charge_endpoint))
            .route("/v1/charges/{id}", get(retrieve_charge_endpoint))
            .route(
                "/v1/charges/{id}/refunds",
                post(create_refund_endpoint).get(list_refunds_endpoint),
            )
            .route(
                "/v1/charges/{id}/refunds/{refund}",
                get(retrieve_refund_endpoint),
            )
            .route("/v1/charges/{id}/reverse", post(reverse_charge_endpoint))
            .with_state(imitation);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{address}/v1/")
    }

    fn settings(api_base: &str, api_key: &str) -> PingppSettings {
        PingppSettings {
            api_base: api_base.to_owned(),
            app_id: "app_1Gqj58ynP0mHeX1q".to_owned(),
            api_key: Secret::new(api_key.to_owned()),
            merchant_key: Some(shared_test_key().clone()),
            webhook_public_key: shared_test_key().to_public_key(),
            provider_name: "pingpp",
        }
    }

    async fn client_for(imitation: Imitation) -> (PingppClient, Arc<Imitation>) {
        let imitation = Arc::new(imitation);
        let api_base = serve(Arc::clone(&imitation)).await;
        let client = PingppClient::new(settings(&api_base, API_KEY)).unwrap();
        (client, imitation)
    }

    fn charge_request(channel: Channel) -> ChargeRequest {
        let expires_at = DateTime::from_timestamp(Utc::now().timestamp() + 900, 0).unwrap();
        ChargeRequest {
            order_id: OrderId::from_uuid(uuid::Uuid::new_v4()),
            amount: Money::new(2900, Currency::Cny).unwrap(),
            channel,
            subject: "专业版会员月付 Pro membership, monthly billing".to_owned(),
            body: "b".repeat(200),
            client_ip: "203.0.113.7".to_owned(),
            expires_at,
        }
    }

    fn refund_request() -> RefundRequest {
        RefundRequest {
            charge_id: ChargeId::parse("ch_L8qn10mLmr1GS8e5OODmHaL4").unwrap(),
            refund_id: RefundId::from_uuid(uuid::Uuid::new_v4()),
            amount: Money::new(1000, Currency::Cny).unwrap(),
            description: "customer asked".to_owned(),
        }
    }

    fn assert_no_key(error: &GatewayError) {
        assert!(!error.to_string().contains(API_KEY), "{error}");
        assert!(!format!("{error:?}").contains(API_KEY), "{error:?}");
    }

    #[test]
    fn the_signing_message_is_body_then_uri_then_timestamp() {
        assert_eq!(
            request_signing_message(br#"{"a":1}"#, "/v1/charges?x=1", 1_700_000_000),
            br#"{"a":1}/v1/charges?x=11700000000"#.to_vec()
        );
        assert_eq!(
            request_signing_message(b"", "/v1/charges/ch_1", 5),
            b"/v1/charges/ch_15".to_vec()
        );
    }

    #[test]
    fn only_reads_repeat_after_the_gateway_may_have_acted() {
        for cause in [Cause::Connect, Cause::Timeout, Cause::Overloaded] {
            assert!(RetryPolicy::Read.repeats(cause), "{cause:?}");
        }
        assert!(!RetryPolicy::Read.repeats(Cause::Final));
        assert!(RetryPolicy::Create.repeats(Cause::Connect));
        for cause in [Cause::Timeout, Cause::Overloaded, Cause::Final] {
            assert!(!RetryPolicy::Create.repeats(cause), "{cause:?}");
        }
        assert_eq!(RetryPolicy::Read.attempts_max(), 3);
        assert_eq!(RetryPolicy::Create.attempts_max(), 2);
    }

    #[tokio::test]
    async fn a_charge_is_created_for_our_order_and_its_credential_returned() {
        let (client, imitation) = client_for(Imitation::new()).await;
        let request = charge_request(Channel::AlipayQr);
        let issued = client.create_charge(&request).await.unwrap();

        let order_no = order_no_for(&request.order_id);
        assert_eq!(issued.charge_id.as_str(), "ch_L8qn10mLmr1GS8e5OODmHaL4");
        assert_eq!(issued.qr_code, format!("https://qr.example/{order_no}"));
        assert_eq!(issued.expires_at, request.expires_at);

        let sent = imitation.last_body();
        assert_eq!(sent["order_no"], json!(order_no));
        assert_eq!(sent["app"]["id"], json!("app_1Gqj58ynP0mHeX1q"));
        assert_eq!(sent["channel"], json!("alipay_qr"));
        assert_eq!(sent["amount"], json!(2900));
        assert_eq!(sent["currency"], json!("cny"));
        assert_eq!(sent["client_ip"], json!("203.0.113.7"));
        assert_eq!(sent["time_expire"], json!(request.expires_at.timestamp()));
        assert_eq!(
            sent["metadata"]["order_id"],
            json!(request.order_id.to_string())
        );
        assert_eq!(sent["subject"].as_str().unwrap().chars().count(), 32);
        assert!(request
            .subject
            .starts_with(sent["subject"].as_str().unwrap()));
        assert_eq!(sent["body"].as_str().unwrap().chars().count(), 128);
        assert_eq!(sent["extra"], json!({}));
        assert_eq!(imitation.calls(), 1);
    }

    #[tokio::test]
    async fn a_wechat_qr_charge_carries_a_product_id() {
        let (client, imitation) = client_for(Imitation::new()).await;
        let request = charge_request(Channel::WxPubQr);
        let issued = client.create_charge(&request).await.unwrap();
        let order_no = order_no_for(&request.order_id);
        assert_eq!(issued.qr_code, format!("https://qr.example/{order_no}"));
        let product_id = imitation.last_body()["extra"]["product_id"].clone();
        assert_eq!(product_id, json!(order_no[..32]));
    }

    #[tokio::test]
    async fn requests_are_unsigned_without_a_merchant_key() {
        let imitation = Imitation {
            merchant_key: None,
            ..Imitation::new()
        };
        let imitation = Arc::new(imitation);
        let api_base = serve(Arc::clone(&imitation)).await;
        let client = PingppClient::new(PingppSettings {
            merchant_key: None,
            ..settings(&api_base, API_KEY)
        })
        .unwrap();
        client
            .create_charge(&charge_request(Channel::AlipayQr))
            .await
            .unwrap();
        assert_eq!(imitation.calls(), 1);
    }

    #[tokio::test]
    async fn a_charge_without_its_credential_is_a_protocol_error() {
        let imitation = Imitation {
            with_credential: false,
            ..Imitation::new()
        };
        let (client, _) = client_for(imitation).await;
        let error = client
            .create_charge(&charge_request(Channel::AlipayQr))
            .await
            .unwrap_err();
        assert!(matches!(error, GatewayError::Protocol(_)), "{error:?}");
    }

    #[tokio::test]
    async fn a_wrong_api_key_is_an_authentication_error() {
        let imitation = Arc::new(Imitation::new());
        let api_base = serve(Arc::clone(&imitation)).await;
        let wrong_key = "sk_test_wrongwrongwrong";
        let client = PingppClient::new(settings(&api_base, wrong_key)).unwrap();
        let error = client
            .create_charge(&charge_request(Channel::AlipayQr))
            .await
            .unwrap_err();
        assert_eq!(error, GatewayError::Authentication);
        assert!(!error.to_string().contains(wrong_key));
        assert_eq!(imitation.calls(), 1);
    }

    #[tokio::test]
    async fn a_bad_request_is_rejected_with_the_gateway_message_without_the_key() {
        let message = format!("amount is invalid for key {API_KEY}");
        let imitation = Imitation::new().scripted(&[(StatusCode::BAD_REQUEST, message.as_str())]);
        let (client, imitation) = client_for(imitation).await;
        let error = client
            .create_charge(&charge_request(Channel::AlipayQr))
            .await
            .unwrap_err();
        let GatewayError::Rejected { code, message } = &error else {
            panic!("expected Rejected, got {error:?}");
        };
        assert_eq!(code.as_deref(), Some("scripted"));
        assert!(message.starts_with("amount is invalid"), "{message}");
        assert_no_key(&error);
        assert_eq!(imitation.calls(), 1);
    }

    #[tokio::test]
    async fn a_charge_is_not_created_twice_after_a_503() {
        let imitation = Imitation::new().scripted(&[(StatusCode::SERVICE_UNAVAILABLE, "busy")]);
        let (client, imitation) = client_for(imitation).await;
        let error = client
            .create_charge(&charge_request(Channel::AlipayQr))
            .await
            .unwrap_err();
        assert!(matches!(error, GatewayError::Upstream(_)), "{error:?}");
        assert_eq!(imitation.calls(), 1);
    }

    #[tokio::test]
    async fn retrieving_repeats_after_a_503_then_succeeds() {
        let imitation = Imitation::new().scripted(&[(StatusCode::SERVICE_UNAVAILABLE, "busy")]);
        let (client, imitation) = client_for(imitation).await;
        let charge_id = ChargeId::parse("ch_L8qn10mLmr1GS8e5OODmHaL4").unwrap();
        let retrieved = client.retrieve_charge(&charge_id).await.unwrap();
        assert_eq!(imitation.calls(), 2);
        // The answer is kept as it came, marked unsigned: Ping++ does not sign answers.
        assert_eq!(retrieved.answer.protocol, answer_protocols::PINGPP_CHARGE);
        assert_eq!(retrieved.answer.key_fingerprint, None);
        let kept: Value = serde_json::from_slice(&retrieved.answer.body).unwrap();
        assert_eq!(kept["id"], charge_id.as_str());
        let state = retrieved.charge;
        assert_eq!(state.charge_id, charge_id);
        assert!(state.paid);
        assert_eq!(state.amount, Money::new(2900, Currency::Cny).unwrap());
        assert_eq!(state.time_paid.unwrap().timestamp(), 1_700_000_123);
    }

    #[tokio::test]
    async fn retrieving_gives_up_after_three_tries() {
        let imitation = Imitation::new().scripted(&[
            (StatusCode::BAD_GATEWAY, "down"),
            (StatusCode::SERVICE_UNAVAILABLE, "down"),
            (StatusCode::GATEWAY_TIMEOUT, "down"),
            (StatusCode::SERVICE_UNAVAILABLE, "down"),
        ]);
        let (client, imitation) = client_for(imitation).await;
        let charge_id = ChargeId::parse("ch_L8qn10mLmr1GS8e5OODmHaL4").unwrap();
        let error = client.retrieve_charge(&charge_id).await.unwrap_err();
        assert!(matches!(error, GatewayError::Upstream(_)), "{error:?}");
        assert_eq!(imitation.calls(), 3);
    }

    #[tokio::test]
    async fn retrieving_does_not_repeat_a_404() {
        let imitation = Imitation::new().scripted(&[(StatusCode::NOT_FOUND, "No such charge")]);
        let (client, imitation) = client_for(imitation).await;
        let charge_id = ChargeId::parse("ch_unknown").unwrap();
        let error = client.retrieve_charge(&charge_id).await.unwrap_err();
        assert!(matches!(error, GatewayError::Rejected { .. }), "{error:?}");
        assert_eq!(imitation.calls(), 1);
    }

    #[tokio::test]
    async fn a_refund_carries_our_refund_id_and_is_pending() {
        let (client, imitation) = client_for(Imitation::new()).await;
        let request = refund_request();
        let issued = client.create_refund(&request).await.unwrap();
        assert_eq!(
            issued.gateway_refund_id.as_str(),
            "re_SG0WDOXz5K8SCaj5GKO4abc1"
        );
        assert_eq!(issued.state, RefundState::Pending);
        let sent = imitation.last_body();
        assert_eq!(sent["amount"], json!(1000));
        assert_eq!(sent["description"], json!("customer asked"));
        assert_eq!(
            sent["metadata"]["refund_id"],
            json!(request.refund_id.to_string())
        );
    }

    #[tokio::test]
    async fn a_refund_is_not_repeated_after_a_502() {
        let imitation = Imitation::new().scripted(&[(StatusCode::BAD_GATEWAY, "bad gateway")]);
        let (client, imitation) = client_for(imitation).await;
        let error = client.create_refund(&refund_request()).await.unwrap_err();
        assert!(matches!(error, GatewayError::Upstream(_)), "{error:?}");
        assert_eq!(imitation.calls(), 1);
    }

    #[tokio::test]
    async fn a_rate_limit_is_an_upstream_error() {
        let imitation = Imitation::new().scripted(&[(StatusCode::TOO_MANY_REQUESTS, "slow down")]);
        let (client, _) = client_for(imitation).await;
        let error = client.create_refund(&refund_request()).await.unwrap_err();
        assert!(matches!(error, GatewayError::Upstream(_)), "{error:?}");
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let client = PingppClient::new(settings(&format!("http://{address}/v1"), API_KEY)).unwrap();
        let error = client
            .create_charge(&charge_request(Channel::AlipayQr))
            .await
            .unwrap_err();
        assert!(matches!(error, GatewayError::Unreachable(_)), "{error:?}");
        assert_eq!(error.code(), "gateway.unreachable");
        assert_no_key(&error);
    }

    #[tokio::test]
    async fn a_slow_gateway_times_out_and_only_reads_are_repeated() {
        let imitation = Imitation {
            delay: Duration::from_millis(500),
            ..Imitation::new()
        };
        let imitation = Arc::new(imitation);
        let api_base = serve(Arc::clone(&imitation)).await;
        let client = PingppClient::with_timeouts(
            settings(&api_base, API_KEY),
            CONNECT_TIMEOUT,
            Duration::from_millis(100),
        )
        .unwrap();

        let error = client
            .create_charge(&charge_request(Channel::AlipayQr))
            .await
            .unwrap_err();
        assert_eq!(error, GatewayError::Timeout);
        assert_eq!(imitation.calls(), 1);

        let charge_id = ChargeId::parse("ch_L8qn10mLmr1GS8e5OODmHaL4").unwrap();
        let error = client.retrieve_charge(&charge_id).await.unwrap_err();
        assert_eq!(error, GatewayError::Timeout);
        assert_eq!(imitation.calls(), 1 + 3);
    }

    #[test]
    fn bad_settings_are_refused_and_debug_output_hides_secrets() {
        let error = PingppClient::new(settings("ftp://example.com/v1", API_KEY)).unwrap_err();
        assert!(matches!(error, ClientBuildError::ApiBase(_)));
        let error = PingppClient::new(settings("https://example.com/v1", "sk\nbad")).unwrap_err();
        assert_eq!(error, ClientBuildError::ApiKey);
        assert!(!error.to_string().contains("bad"));

        let settings = settings("https://api.pingxx.com/v1/", API_KEY);
        assert!(!format!("{settings:?}").contains(API_KEY));
        let client = PingppClient::new(settings).unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains(API_KEY), "{debug}");
        assert!(debug.contains("https://api.pingxx.com/v1\""), "{debug}");
        assert_eq!(client.provider(), "pingpp");
    }

    #[test]
    fn the_client_verifies_webhooks_with_its_public_key() {
        let client = PingppClient::new(settings("https://api.pingxx.com/v1", API_KEY)).unwrap();
        let body = br#"{"id":"evt_x1","type":"transfer.succeeded","data":{"object":{}}}"#;
        let mut headers = WebhookHeaders::new();
        headers.push(
            "x-pingplusplus-signature",
            signature::sign(shared_test_key(), body),
        );
        let event = client.verify_webhook(&headers, body).unwrap();
        assert_eq!(event.event_type(), "transfer.succeeded");
        assert!(client.verify_webhook(&WebhookHeaders::new(), body).is_err());
    }

    #[tokio::test]
    async fn a_refund_is_looked_up_by_charge_and_refund_id() {
        let (client, _) = client_for(Imitation::new()).await;
        let charge_id = ChargeId::parse("ch_L8qn10mLmr1GS8e5OODmHaL4").unwrap();
        let refund_id = GatewayRefundId::parse("re_SG0WDOXz5K8SCaj5GKO4abc1").unwrap();
        let refund = client
            .retrieve_refund(&charge_id, &refund_id)
            .await
            .unwrap();
        assert_eq!(refund.state, RefundState::Succeeded);
        assert_eq!(refund.facts.gateway_refund_id, refund_id);
        assert_eq!(refund.facts.amount.amount_minor(), 900);
        assert!(refund.facts.refund_id.is_some());
    }

    #[tokio::test]
    async fn a_refund_without_its_gateway_id_is_found_by_paging_the_charges_refunds() {
        let (client, imitation) = client_for(Imitation::new()).await;
        let charge_id = ChargeId::parse("ch_L8qn10mLmr1GS8e5OODmHaL4").unwrap();
        let ours: RefundId = LISTED_REFUND_ID.parse().unwrap();
        let found = client
            .find_refund(&charge_id, &ours)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.facts.gateway_refund_id.as_str(), "re_list_3");
        assert_eq!(found.facts.refund_id, Some(ours));
        assert_eq!(found.state, RefundState::Succeeded);
        // Three pages of 100, then the refund itself: its own answer is the evidence kept.
        assert_eq!(imitation.calls(), 4, "three pages of 100 and the refund");

        let unknown = RefundId::from_uuid(uuid::Uuid::new_v4());
        assert_eq!(
            client.find_refund(&charge_id, &unknown).await.unwrap(),
            None
        );
        assert_eq!(imitation.calls(), 4 + 3, "the whole list, then no more");
    }

    #[tokio::test]
    async fn closing_reverses_and_tells_paid_and_missing_charges_apart() {
        let (client, imitation) = client_for(Imitation::new()).await;
        let close = |id: &str| {
            let charge_id = ChargeId::parse(id).unwrap();
            let client = &client;
            async move { client.close_charge(&charge_id).await }
        };
        assert_eq!(
            close("ch_L8qn10mLmr1GS8e5OODmHaL4").await,
            Ok(CloseOutcome::Closed)
        );
        assert_eq!(close("ch_paid1").await, Ok(CloseOutcome::AlreadyPaid));
        assert_eq!(close("ch_missing1").await, Ok(CloseOutcome::NotFound));
        assert_eq!(imitation.calls(), 3, "a 404 is not repeated");
    }

    #[test]
    fn webhook_replies_are_judged_by_status() {
        let client = PingppClient::new(settings("http://127.0.0.1:9/v1", API_KEY)).unwrap();
        assert_eq!(client.webhook_reply(WebhookVerdict::Recorded).status, 200);
        let refused = WebhookRejection::Malformed("x".to_owned());
        assert_eq!(
            client
                .webhook_reply(WebhookVerdict::Refused(&refused))
                .status,
            400
        );
        assert_eq!(client.webhook_reply(WebhookVerdict::RetryLater).status, 503);
    }
}
