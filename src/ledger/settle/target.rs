//! Which order a gateway event is about, and the command it means for that order.

use aggregates::{OrderCommand, OrderId, ReportedRefund};
use chrono::Utc;
use gateways::{order_id_from_order_no, GatewayEvent};

use super::SettlementError;
use crate::state::AppState;

/// The order a gateway event is about, and the command it means for that order.
pub(super) async fn target_order(
    state: &AppState,
    event: &GatewayEvent,
) -> Result<Option<(OrderId, OrderCommand)>, SettlementError> {
    let now = Utc::now();
    Ok(match event {
        GatewayEvent::ChargeSucceeded { event_id, charge } => {
            order_id_from_order_no(&charge.order_no).map(|order_id| {
                (
                    order_id,
                    OrderCommand::ConfirmPayment {
                        charge_id: charge.charge_id.clone(),
                        gateway_event_id: Some(event_id.clone()),
                        amount: charge.amount,
                        transaction_no: charge.transaction_no.clone(),
                        paid_at: charge.time_paid.unwrap_or(now),
                        at: now,
                        membership: None,
                    },
                )
            })
        }
        GatewayEvent::ChargeFailed { event_id, charge } => order_id_from_order_no(&charge.order_no)
            .map(|order_id| {
                (
                    order_id,
                    OrderCommand::FailPayment {
                        charge_id: charge.charge_id.clone(),
                        gateway_event_id: Some(event_id.clone()),
                        failure_code: charge.failure_code.clone(),
                        failure_message: charge.failure_message.clone(),
                        at: now,
                    },
                )
            }),
        GatewayEvent::RefundSucceeded { event_id, refund } => {
            let order = refund_order(state, refund).await?;
            order.zip(refund.refund_id).map(|(order_id, refund_id)| {
                (
                    order_id,
                    OrderCommand::ConfirmRefund {
                        refund_id,
                        gateway_refund_id: Some(refund.gateway_refund_id.clone()),
                        gateway_event_id: Some(event_id.clone()),
                        reported: Some(ReportedRefund {
                            charge_id: refund.charge_id.clone(),
                            amount: refund.amount,
                        }),
                        at: now,
                    },
                )
            })
        }
        GatewayEvent::RefundFailed { event_id, refund } => {
            let order = refund_order(state, refund).await?;
            order.zip(refund.refund_id).map(|(order_id, refund_id)| {
                (
                    order_id,
                    OrderCommand::FailRefund {
                        refund_id,
                        gateway_refund_id: Some(refund.gateway_refund_id.clone()),
                        gateway_event_id: Some(event_id.clone()),
                        failure_code: refund.failure_code.clone(),
                        failure_message: refund.failure_message.clone(),
                        at: now,
                    },
                )
            })
        }
        GatewayEvent::Other { .. } => None,
    })
}

/// A refund's order: from the charge's order number, else by the charge id in the views.
async fn refund_order(
    state: &AppState,
    refund: &gateways::RefundFacts,
) -> Result<Option<OrderId>, SettlementError> {
    if let Some(order_id) = refund
        .charge_order_no
        .as_deref()
        .and_then(order_id_from_order_no)
    {
        return Ok(Some(order_id));
    }
    let row = projections::order_status::find_by_charge(
        &state.store.read,
        &projections::Tables::live(),
        refund.charge_id.as_ref(),
    )
    .await?;
    Ok(row.and_then(|row| row.order_id.parse().ok()))
}
