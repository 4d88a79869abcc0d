//! `POST /v1/webhooks/{provider}`: a gateway telling us money moved. One handler for every
//! provider: the routing names the gateway whose webhooks arrive at the path, the gateway
//! verifies the raw bytes before anything is parsed and words the answer the way its provider
//! expects it. The "stop resending" answer goes out once the fact is durably recorded, and
//! only then: the provider redelivers anything else.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gateways::{WebhookReply, WebhookVerdict};

use super::extract::AppPath;
use super::request::{position_header, request_id};
use crate::error::{ApiError, ErrorBody};
use crate::ledger::settle::{self, Outcome};
use crate::state::AppState;
use crate::store::Source;

/// Largest webhook body accepted; every provider's notifications are a few kilobytes.
pub const WEBHOOK_BODY_LIMIT_BYTES: usize = 64 * 1024;

/// What the ledger made of a delivery (`applied`, `duplicate`, `unmatched`, `ignored`,
/// `deferred`), for delivery logs and tests: the body belongs to the provider's format.
pub const OUTCOME_HEADER: HeaderName = HeaderName::from_static("x-webhook-outcome");

#[utoipa::path(
    post,
    path = "/v1/webhooks/{provider}",
    operation_id = "receive_gateway_webhook",
    tag = "gateway webhooks",
    summary = "A payment gateway's signed notification",
    description = "Authenticated by the provider's signature over the raw body (Ping++: RSA-SHA256 \
        in `X-Pingplusplus-Signature`; Alipay: RSA2 `sign` field; WeChat Pay: `Wechatpay-Signature` \
        with its serial, timestamp and nonce), verified before anything is parsed; no bearer token. \
        Answered in the provider's own format, which is why the answers have no JSON schema here: \
        the \"stop resending\" answer goes out only once the fact is durably recorded. The \
        `X-Webhook-Outcome` header says what the ledger made of it (`applied`, `duplicate`, \
        `unmatched`, `ignored`, `deferred`).",
    params(("provider" = String, Path, description = "`pingpp`, `alipay` or `wechatpay`")),
    request_body(description = "The provider's notification, exactly as it sent it (at most 64 KiB)",
        content(("application/json"), ("application/x-www-form-urlencoded"))),
    security(()),
    responses(
        (status = 200, description = "Recorded (Ping++: `{\"received\": true}`; Alipay: the text `success`)",
            content(("application/json"), ("text/plain")), headers(("X-Webhook-Outcome" = String, description = "`applied`, `duplicate`, `unmatched`, `ignored` or `deferred`"))),
        (status = 204, description = "Recorded (WeChat Pay)", headers(("X-Webhook-Outcome" = String, description = "`applied`, `duplicate`, `unmatched`, `ignored` or `deferred`"))),
        (status = 400, description = "Refused as malformed, `webhook.malformed` (Alipay: the text `fail`; WeChat Pay: `{\"code\": \"FAIL\"}`)",
            content(("application/json"), ("text/plain"))),
        (status = 401, description = "Refused: `webhook.signature_missing`, `webhook.signature_malformed`, `webhook.signature_invalid`, `webhook.signature_ambiguous`",
            content(("application/json"), ("text/plain"))),
        (status = 404, description = "`webhook.unknown_provider`: no channel uses this provider", body = ErrorBody),
        (status = 413, description = "`request.too_large`: over 64 KiB", body = ErrorBody),
        (status = 503, description = "Not recorded, or too early to apply (deferred): deliver it again later",
            content(("application/json"), ("text/plain"))),
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    AppPath(provider): AppPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Nobody should be sending webhooks for a provider no channel uses.
    let gateway = state.gateways.for_webhook(&provider).ok_or_else(|| {
        ApiError::not_found(
            "webhook.unknown_provider",
            "no payment provider in use receives webhooks here",
        )
    })?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::malformed("request.unreadable_body", rejection.body_text())
        }
    })?;
    let webhook_headers: gateways::WebhookHeaders = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    let event = match gateway.verify_webhook(&webhook_headers, &body) {
        Ok(event) => event,
        Err(rejection) => {
            state.metrics.webhook_rejected();
            if let Some(left_out) = crate::log_budget::REFUSALS.take() {
                tracing::warn!(
                    provider,
                    code = rejection.code(),
                    bytes = body.len(),
                    left_out,
                    "webhook refused"
                );
            }
            return Ok(reply(
                gateway.webhook_reply(WebhookVerdict::Refused(&rejection)),
                None,
            ));
        }
    };
    let kept = gateway.webhook_evidence(&webhook_headers);
    let evidence = settle::Evidence {
        body: &body,
        protocol: kept.protocol,
        signature_headers: &kept.signature_headers,
        key_fingerprint: kept.key_fingerprint.as_deref(),
    };
    let settled = settle::settle(
        &state,
        gateway.provider(),
        &event,
        &evidence,
        Source::Webhook,
        &request_id(&headers),
    )
    .await;
    let settled = match settled {
        Ok(settled) => settled,
        Err(error) => {
            // Nothing was recorded: the provider must deliver it again.
            tracing::warn!(provider, %error, "webhook not recorded; asking for a redelivery");
            return Ok(reply(
                gateway.webhook_reply(WebhookVerdict::RetryLater),
                None,
            ));
        }
    };
    state.metrics.webhook_settled(settled.outcome);
    let verdict = if settled.outcome.acknowledged() {
        WebhookVerdict::Recorded
    } else {
        // Recorded as deferred (the order is not ready for it yet): the redelivery settles it.
        WebhookVerdict::RetryLater
    };
    Ok(reply(
        gateway.webhook_reply(verdict),
        Some((settled.outcome, settled.position)),
    ))
}

/// The provider's reply as an HTTP response, with what the ledger made of the delivery.
fn reply(reply: WebhookReply, settled: Option<(Outcome, i64)>) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(reply.content_type),
        )],
        reply.body,
    )
        .into_response();
    if let Some((outcome, position)) = settled {
        let headers = response.headers_mut();
        headers.insert(OUTCOME_HEADER, HeaderValue::from_static(outcome.as_str()));
        let (name, value) = position_header(position);
        headers.insert(name, value);
    }
    response
}
