//! Refunds: an admin asks for (part of) a paid order's money back. The refund is pending
//! until the gateway confirms it.

use aggregates::{ChargeId, Money, OrderCommand, RefundId};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use projections::Tables;
use serde::Deserialize;
use serde_json::json;

use super::extract::{AppJson, AppPath, Caller};
use super::idempotency::{self, Claim};
use super::orders::{parse_order_id, visible_order};
use super::request::{api_metadata, position_header};
use crate::error::ApiError;
use crate::state::{AppState, READ_YOUR_WRITES_WAIT};
use gateways::{GatewayError, RefundRequest, RefundState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    amount: i64,
    reason: String,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    AppJson(body): AppJson<CreateRefund>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let order_id = parse_order_id(&id)?;
    let order = visible_order(&state, &caller, &order_id).await?;
    if body.amount <= 0 {
        return Err(ApiError::invalid(
            "refund.invalid_amount",
            "amount must be a positive number of minor units (fen)",
        ));
    }
    let currency = order
        .currency
        .parse()
        .map_err(|_| ApiError::internal(format!("order {order_id} has an unknown currency")))?;
    let amount = Money::new(body.amount, currency)
        .map_err(|error| ApiError::invalid("refund.invalid_amount", error.to_string()))?;
    let charge_id = order
        .charge_id
        .as_deref()
        .and_then(|charge| ChargeId::parse(charge).ok())
        .ok_or_else(|| ApiError::Conflict {
            code: "order.invalid_transition",
            message: "the order has no charge to refund".to_owned(),
        })?;
    let refund_id = RefundId::from_uuid(uuid::Uuid::new_v4());
    let request_hash = idempotency::hash(&[&order_id, &body.amount.to_string(), &body.reason]);
    if let Claim::Replay(existing) = idempotency::claim(
        &state.store.read,
        &headers,
        &caller.0.user_id,
        "create_refund",
        &request_hash,
        &refund_id.to_string(),
    )
    .await?
    {
        return existing_refund(&state, &existing).await;
    }
    let metadata = api_metadata(&headers, &caller.0);
    // Record the request first: the gateway's notice of the refund must find it.
    let requested = state
        .orders
        .execute(
            &order_id,
            OrderCommand::RequestRefund {
                refund_id,
                amount,
                reason: body.reason.clone(),
                at: Utc::now(),
            },
            &metadata,
        )
        .await;
    let requested = match requested {
        Ok(committed) => committed,
        Err(error) => {
            idempotency::release(
                &state.store.read,
                &headers,
                &caller.0.user_id,
                "create_refund",
            )
            .await;
            return Err(error.into());
        }
    };
    let issued = state
        .gateway
        .create_refund(&RefundRequest {
            charge_id,
            refund_id,
            amount,
            description: body.reason.clone(),
        })
        .await;
    let failure = match &issued {
        Ok(issued) if issued.state == RefundState::Failed => Some((
            Some(issued.gateway_refund_id.clone()),
            "gateway.refund_failed".to_owned(),
        )),
        Ok(_) => None,
        Err(error) => Some((None, error.code().to_owned())),
    };
    if let Some((gateway_refund_id, code)) = failure {
        // Release the reservation so the money can be refunded again.
        state
            .orders
            .execute(
                &order_id,
                OrderCommand::FailRefund {
                    refund_id,
                    gateway_refund_id,
                    gateway_event_id: None,
                    failure_code: Some(code),
                    failure_message: None,
                    at: Utc::now(),
                },
                &metadata,
            )
            .await?;
        return Err(match issued {
            Err(error) => error.into(),
            Ok(_) => ApiError::Gateway(GatewayError::Rejected {
                code: Some("refund_failed".to_owned()),
                message: "the gateway refused the refund".to_owned(),
            }),
        });
    }
    let position = requested.position().unwrap_or_default();
    state.views.wait_for(position, READ_YOUR_WRITES_WAIT).await;
    tracing::info!(order_id, refund_id = %refund_id, amount = body.amount, "refund requested");
    Ok((
        StatusCode::ACCEPTED,
        [position_header(position)],
        Json(json!({
            "id": refund_id.to_string(),
            "order_id": order_id,
            "status": "pending",
            "amount": amount.amount_minor(),
            "currency": amount.currency().code(),
            "reason": body.reason,
            "gateway_refund_id": issued.ok().map(|issued| issued.gateway_refund_id.to_string()),
        })),
    )
        .into_response())
}

/// The answer to a retried refund request: the refund as it stands now.
async fn existing_refund(state: &AppState, refund_id: &str) -> Result<Response, ApiError> {
    let refund = projections::refund_status::find(&state.store.read, &Tables::live(), refund_id)
        .await?
        .ok_or_else(idempotency::in_progress)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": refund.refund_id,
            "order_id": refund.order_id,
            "status": refund.status,
            "amount": refund.amount_minor,
            "currency": refund.currency,
            "reason": refund.reason,
            "gateway_refund_id": refund.gateway_refund_id,
        })),
    )
        .into_response())
}
