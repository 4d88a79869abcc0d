//! Requesting a refund: reserve the amount on the order (so the gateway's notice finds the
//! refund), then ask the gateway; a refusal releases the reservation. Success arrives later,
//! from the gateway's notice or the reconciler.

use aggregates::{Channel, ChargeId, Money, OrderCommand, RefundId};
use chrono::Utc;
use gateways::{order_no_for, RefundFacts, RefundRequest, RefundState};

use super::idempotency::{self, Claim, IdempotencyKey};
use super::settle;
use super::LedgerError;
use crate::state::AppState;
use crate::store::{EventMetadata, Source};

const IDEMPOTENCY_SCOPE: &str = "create_refund";

/// A request for (part of) a paid order's money back.
#[derive(Debug, Clone)]
pub struct RequestRefund {
    pub order_id: String,
    /// The order's charge at the gateway.
    pub charge_id: ChargeId,
    /// The order's channel: its gateway is the one that created the charge.
    pub channel: Channel,
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
    // The gateway that created the order's charge; without one nothing is reserved.
    let gateway = state.gateway_for(request.channel)?;
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
    let refund = RefundRequest {
        charge_id: request.charge_id,
        refund_id,
        amount: request.amount,
        description: request.reason,
    };
    let issued = gateway.create_refund(&refund).await;
    let (failure, error) = match issued {
        Ok(issued) if issued.state != RefundState::Failed => {
            tracing::info!(order_id = %request.order_id, refund_id = %refund_id, "refund requested");
            let mut position = reserved.position().unwrap_or_default();
            if issued.state == RefundState::Succeeded {
                let facts = RefundFacts {
                    gateway_refund_id: issued.gateway_refund_id.clone(),
                    charge_id: refund.charge_id.clone(),
                    charge_order_no: request
                        .order_id
                        .parse()
                        .ok()
                        .map(|order_id| order_no_for(&order_id)),
                    refund_id: Some(refund_id),
                    amount: request.amount,
                    succeeded_at: None,
                    failure_code: None,
                    failure_message: None,
                };
                // A refund done in the answer is settled now; should that fail it stays
                // pending for the reconciler's lookup, like one whose notice was lost.
                match settle::settle_refund_answer(
                    state,
                    gateway.provider(),
                    RefundState::Succeeded,
                    facts,
                    &issued.answer,
                    Source::Api,
                    &request.metadata.request_id,
                )
                .await
                {
                    Ok(settled) => {
                        position =
                            settled.map_or(position, |settled| settled.position.max(position));
                    }
                    Err(error) => {
                        tracing::warn!(refund_id = %refund_id, %error, "refund left pending");
                    }
                }
            }
            return Ok(RefundRequested::New {
                refund_id,
                gateway_refund_id: Some(issued.gateway_refund_id.to_string()),
                position,
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
