//! Requesting a refund: reserve the amount on the order (so the gateway's notice finds the
//! refund), then ask the gateway; a refusal releases the reservation. Success arrives later,
//! from the gateway's notice or the reconciler.

use aggregates::{ChargeId, Money, OrderCommand, RefundId};
use chrono::Utc;
use gateways::{RefundRequest, RefundState};

use super::idempotency::{self, Claim, IdempotencyKey};
use super::LedgerError;
use crate::state::AppState;
use crate::store::EventMetadata;

const IDEMPOTENCY_SCOPE: &str = "create_refund";

/// A request for (part of) a paid order's money back.
#[derive(Debug, Clone)]
pub struct RequestRefund {
    pub order_id: String,
    /// The order's charge at the gateway.
    pub charge_id: ChargeId,
    pub amount: Money,
    pub reason: String,
    /// Who asked (the idempotency key is theirs).
    pub requested_by: String,
    pub idempotency_key: Option<IdempotencyKey>,
    pub metadata: EventMetadata,
}

/// What requesting a refund did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundRequested {
    /// The refund is reserved and the gateway accepted it; it is pending until confirmed.
    New {
        refund_id: RefundId,
        gateway_refund_id: Option<String>,
        position: i64,
    },
    /// The same request came before with this idempotency key: that request's refund.
    Replayed { refund_id: String },
}

pub async fn request_refund(
    state: &AppState,
    request: RequestRefund,
) -> Result<RefundRequested, LedgerError> {
    let refund_id = RefundId::from_uuid(uuid::Uuid::new_v4());
    let key = request.idempotency_key.as_ref();
    let user = request.requested_by.as_str();
    let request_hash = idempotency::hash(&[
        &request.order_id,
        &request.amount.amount_minor().to_string(),
        &request.reason,
    ]);
    if let Claim::Replay(existing) = idempotency::claim(
        &state.store.read,
        key,
        user,
        IDEMPOTENCY_SCOPE,
        &request_hash,
        &refund_id.to_string(),
    )
    .await?
    {
        return Ok(RefundRequested::Replayed {
            refund_id: existing,
        });
    }
    let reserve = OrderCommand::RequestRefund {
        refund_id,
        amount: request.amount,
        reason: request.reason.clone(),
        at: Utc::now(),
    };
    let reserved = match state
        .orders
        .execute(&request.order_id, reserve, &request.metadata)
        .await
    {
        Ok(committed) => committed,
        Err(error) => {
            idempotency::release(&state.store.read, key, user, IDEMPOTENCY_SCOPE).await;
            return Err(error.into());
        }
    };
    let issued = state
        .gateway
        .create_refund(&RefundRequest {
            charge_id: request.charge_id,
            refund_id,
            amount: request.amount,
            description: request.reason,
        })
        .await;
    let (failure, error) = match issued {
        Ok(issued) if issued.state != RefundState::Failed => {
            tracing::info!(order_id = %request.order_id, refund_id = %refund_id, "refund requested");
            return Ok(RefundRequested::New {
                refund_id,
                gateway_refund_id: Some(issued.gateway_refund_id.to_string()),
                position: reserved.position().unwrap_or_default(),
            });
        }
        Ok(issued) => (
            (
                Some(issued.gateway_refund_id),
                "gateway.refund_failed".to_owned(),
            ),
            LedgerError::RefundRefused,
        ),
        Err(error) => ((None, error.code().to_owned()), LedgerError::Gateway(error)),
    };
    // Release the reservation so the money can be refunded again.
    let (gateway_refund_id, code) = failure;
    let release = OrderCommand::FailRefund {
        refund_id,
        gateway_refund_id,
        gateway_event_id: None,
        failure_code: Some(code),
        failure_message: None,
        at: Utc::now(),
    };
    state
        .orders
        .execute(&request.order_id, release, &request.metadata)
        .await?;
    Err(error)
}
