//! Settling an order's pending refunds from the gateway: their notice was lost, the gateway
//! sends none we act on (Alipay), or the process stopped before the gateway's answer was
//! written down, so the refund has no gateway id and is found by our refund id. A refund the
//! gateway never received (the stop came before the call) is recorded failed once it is old
//! enough that no request of ours can still be on its way, which releases its money.

use aggregates::order::RefundStatus;
use aggregates::{Order, OrderCommand};
use chrono::{DateTime, Utc};

use super::settle::{self, Outcome};
use super::LedgerError;
use crate::state::AppState;
use crate::store::load;
use crate::store::{EventMetadata, Source};

/// The failure code of a refund the gateway never received.
pub const REFUND_NEVER_SENT_CODE: &str = "refund.never_reached_gateway";

/// An order with refunds pending.
#[derive(Debug, Clone)]
pub struct ReconcileRefunds {
    pub order_id: String,
    /// A refund the gateway does not know that was requested before this is recorded failed;
    /// a younger one may still be on its way to the gateway and is left for a later pass.
    pub unsent_before: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub request_id: String,
}

/// What reconciling the order's pending refunds did, counted per refund.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefundsReconciled {
    /// Settled (succeeded or failed) from the gateway's answer.
    pub settled: usize,
    /// Recorded failed because the gateway never received them.
    pub never_sent: usize,
    /// The gateway could not tell; asked again next pass.
    pub gateway_errors: usize,
    /// Recording the answer failed; tried again next pass.
    pub failed: usize,
}

pub async fn reconcile_refunds(
    state: &AppState,
    request: ReconcileRefunds,
) -> Result<RefundsReconciled, LedgerError> {
    let order = {
        let mut connection = state.store.read.acquire().await?;
        load::load::<Order>(&mut connection, &request.order_id)
            .await?
            .state
    };
    let mut done = RefundsReconciled::default();
    let (Some(channel), Some(charge_id)) = (order.channel(), order.charge_id()) else {
        return Ok(done);
    };
    let Ok(gateway) = state.gateway_for(channel) else {
        done.gateway_errors += 1;
        return Ok(done);
    };
    let pending = order
        .refunds()
        .iter()
        .filter(|refund| refund.status == RefundStatus::Pending);
    for refund in pending {
        let answer = match &refund.gateway_refund_id {
            Some(id) => gateway.retrieve_refund(charge_id, id).await.map(Some),
            None => gateway.find_refund(charge_id, &refund.refund_id).await,
        };
        let answer = match answer {
            Ok(Some(answer)) => answer,
            Ok(None) if refund.requested_at < request.unsent_before => {
                match fail_unsent(state, &request, refund.refund_id).await {
                    Ok(true) => done.never_sent += 1,
                    Ok(false) => {}
                    Err(error) => {
                        done.failed += 1;
                        tracing::warn!(order_id = %request.order_id, %error, "recording an unsent refund failed");
                    }
                }
                continue;
            }
            Ok(None) => continue,
            Err(error) => {
                done.gateway_errors += 1;
                tracing::warn!(order_id = %request.order_id, code = error.code(), %error, "could not look the refund up");
                continue;
            }
        };
        let mut facts = answer.facts;
        // The answer may not carry our id back; the refund asked about is ours.
        facts.refund_id = Some(refund.refund_id);
        match settle::settle_refund_answer(
            state,
            gateway.provider(),
            answer.state,
            facts,
            &answer.answer,
            Source::Reconciler,
            &request.request_id,
        )
        .await
        {
            Ok(Some(settled)) if settled.outcome == Outcome::Applied => done.settled += 1,
            Ok(_) => {}
            Err(error) => {
                done.failed += 1;
                tracing::warn!(order_id = %request.order_id, %error, "recording a refund failed");
            }
        }
    }
    Ok(done)
}

/// Records the refund failed, releasing its reservation so it can be requested again. True
/// when this call recorded it.
async fn fail_unsent(
    state: &AppState,
    request: &ReconcileRefunds,
    refund_id: aggregates::RefundId,
) -> Result<bool, LedgerError> {
    let metadata = EventMetadata::reconciler(&request.request_id);
    let command = OrderCommand::FailRefund {
        refund_id,
        gateway_refund_id: None,
        gateway_event_id: None,
        failure_code: Some(REFUND_NEVER_SENT_CODE.to_owned()),
        failure_message: Some(
            "the gateway has no such refund: the request never reached it".to_owned(),
        ),
        at: request.now,
    };
    let committed = state
        .orders
        .execute(&request.order_id, command, &metadata)
        .await?;
    tracing::info!(order_id = %request.order_id, refund_id = %refund_id, "a refund the gateway never received is recorded failed");
    Ok(!committed.is_unchanged())
}
