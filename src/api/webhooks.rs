//! `POST /v1/webhooks/pingpp`: the gateway telling us money moved. Authenticated by signature
//! only (verified over the raw bytes before anything is parsed), answered 2xx once the fact is
//! durably recorded, and only then: the gateway redelivers anything else.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::request::{position_header, request_id};
use crate::error::ApiError;
use crate::process::settlement::{self, SettlementError};
use crate::state::AppState;
use crate::store::Source;

/// Largest webhook body accepted; Ping++ events are a few kilobytes.
pub const WEBHOOK_BODY_LIMIT_BYTES: usize = 64 * 1024;

pub async fn pingpp(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
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
    let event = state
        .gateway
        .verify_webhook(&webhook_headers, &body)
        .map_err(|rejection| {
            state.metrics.webhook_rejected();
            tracing::warn!(
                code = rejection.code(),
                bytes = body.len(),
                "webhook refused"
            );
            ApiError::Webhook(rejection)
        })?;
    let raw = String::from_utf8_lossy(&body);
    let settled = settlement::settle(&state, &event, &raw, Source::Webhook, &request_id(&headers))
        .await
        .map_err(|error| match error {
            SettlementError::Append(detail) => ApiError::Unavailable {
                code: "webhook.retry_later",
                message: format!(
                    "the event could not be recorded yet; deliver it again ({detail})"
                ),
            },
            other => ApiError::internal(other),
        })?;
    state.metrics.webhook_settled(settled.outcome);
    let status = if settled.outcome.acknowledged() {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    let body = if settled.outcome.acknowledged() {
        json!({
            "received": true,
            "event_id": event.event_id().to_string(),
            "outcome": settled.outcome.as_str(),
            "order_id": settled.order_id,
        })
    } else {
        json!({ "error": {
            "code": "webhook.out_of_order",
            "message": "the order is not ready for this event yet; deliver it again later",
        }})
    };
    Ok((status, [position_header(settled.position)], Json(body)).into_response())
}
