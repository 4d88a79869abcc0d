//! Refunds: an admin asks for (part of) a paid order's money back. The refund is pending
//! until the gateway confirms it.

use aggregates::{ChargeId, Money};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use projections::Tables;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{AppJson, AppPath, Caller};
use super::orders::{idempotency_key, parse_order_id, visible_order};
use super::request::{api_metadata, position_header};
use crate::error::{ApiError, ErrorBody};
use crate::ledger::{self, LedgerError, RefundRequested, RequestRefund};
use crate::state::{AppState, READ_YOUR_WRITES_WAIT};

/// `POST /v1/orders/{id}/refunds`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// Integer minor units of the order's currency (fen), more than 0: on a paid order up to
    /// what was paid and not yet refunded, on a closed one up to `needs_refund_amount`.
    amount: i64,
    reason: String,
}

#[utoipa::path(
    post,
    path = "/v1/orders/{id}/refunds",
    operation_id = "create_refund",
    tag = "refunds",
    summary = "Refund (part of) an order's money",
    description = "Admin only. The refund stays `pending` until the gateway confirms it. Honours \
        `Idempotency-Key`: a retried request answers the refund as it stands.",
    request_body = CreateRefund,
    params(("id" = String, Path, description = "The order id (a UUID)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request answer the same refund")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The refund, pending until the gateway confirms it", body = RefundBody,
            headers(("X-Ledger-Position" = i64, description = "The log position the refund request was written at (not sent for a retried key)"))),
        (status = 400, description = "`request.malformed_json`, `idempotency.malformed_key`", body = ErrorBody),
        (status = 401, description = "`auth.*`: no token or a bad one", body = ErrorBody),
        (status = 403, description = "`auth.forbidden`: not an admin", body = ErrorBody),
        (status = 404, description = "`order.not_found`", body = ErrorBody),
        (status = 409, description = "`order.invalid_transition` (nothing to refund), `idempotency.in_progress`", body = ErrorBody),
        (status = 415, description = "`request.unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`refund.invalid_amount`, `idempotency.key_reused`, `request.invalid_body`", body = ErrorBody),
        (status = 502, description = "`gateway.rejected`, `gateway.authentication`, `gateway.upstream_error`", body = ErrorBody),
        (status = 503, description = "`gateway.unreachable`, `service.database_unavailable`", body = ErrorBody),
        (status = 504, description = "`gateway.timeout`", body = ErrorBody),
    )
)]
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
    let currency = order
        .currency
        .parse()
        .map_err(|_| ApiError::internal(format!("order {order_id} has an unknown currency")))?;
    if body.amount <= 0 {
        return Err(LedgerError::InvalidRefundAmount(body.amount.to_string()).into());
    }
    let request = RequestRefund {
        amount: Money::new(body.amount, currency)
            .map_err(|error| LedgerError::InvalidRefundAmount(error.to_string()))?,
        charge_id: order
            .charge_id
            .as_deref()
            .and_then(|charge| ChargeId::parse(charge).ok())
            .ok_or(LedgerError::NothingToRefund)?,
        channel: order
            .channel
            .parse()
            .map_err(|_| ApiError::internal(format!("order {order_id} has an unknown channel")))?,
        order_id,
        reason: body.reason,
        requested_by: caller.0.user_id.clone(),
        idempotency_key: idempotency_key(&headers)?,
        metadata: api_metadata(&headers, &caller.0),
    };
    let (reason, amount, order_id) = (
        request.reason.clone(),
        request.amount,
        request.order_id.clone(),
    );
    match ledger::request_refund(&state, request).await? {
        RefundRequested::Replayed { refund_id } => existing_refund(&state, &refund_id).await,
        RefundRequested::New {
            refund_id,
            gateway_refund_id,
            position,
        } => {
            state.views.wait_for(position, READ_YOUR_WRITES_WAIT).await;
            let body = RefundBody {
                id: refund_id.to_string(),
                order_id,
                status: "pending".to_owned(),
                amount: amount.amount_minor(),
                currency: amount.currency().code().to_owned(),
                reason,
                gateway_refund_id,
            };
            Ok((
                StatusCode::ACCEPTED,
                [position_header(position)],
                Json(body),
            )
                .into_response())
        }
    }
}

/// A refund as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundBody {
    id: String,
    order_id: String,
    /// `pending`, `succeeded` or `failed`.
    status: String,
    /// Integer minor units of `currency` (fen).
    amount: i64,
    /// ISO 4217 code, e.g. `CNY`.
    currency: String,
    reason: String,
    /// The gateway's id for the refund, once it gave one.
    #[schema(required = true)]
    gateway_refund_id: Option<String>,
}

/// The answer to a retried refund request: the refund as it stands now.
async fn existing_refund(state: &AppState, refund_id: &str) -> Result<Response, ApiError> {
    let refund = projections::refund_status::find(&state.store.read, &Tables::live(), refund_id)
        .await?
        .ok_or(LedgerError::IdempotencyInProgress)?;
    let body = RefundBody {
        id: refund.refund_id,
        order_id: refund.order_id,
        status: refund.status,
        amount: refund.amount_minor,
        currency: refund.currency,
        reason: refund.reason,
        gateway_refund_id: refund.gateway_refund_id,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
