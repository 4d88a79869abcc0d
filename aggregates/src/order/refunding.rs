//! Rules for giving paid money back. A request reserves its amount at once, so concurrent
//! requests can never together exceed what was paid; success or failure settles the reservation.

use chrono::{DateTime, Utc};

use crate::ids::{GatewayEventId, GatewayRefundId, RefundId};
use crate::money::Money;
use crate::text::{clip, fits, MAX_REASON_CHARS};

use super::command::ReportedRefund;
use super::error::OrderError;
use super::event::OrderEvent;
use super::payment::ensure_requested_charge;
use super::refund::{RefundRecord, RefundStatus};
use super::state::OrderDetails;

/// Refund requests per order, failed ones included; bounds the state and stops a runaway retry loop.
pub const MAX_REFUNDS_PER_ORDER: usize = 20;

pub(super) fn request(
    order: &OrderDetails,
    refund_id: RefundId,
    amount: Money,
    reason: String,
    at: DateTime<Utc>,
) -> Result<Vec<OrderEvent>, OrderError> {
    if order.refund(&refund_id).is_some() {
        return Err(OrderError::RefundAlreadyRequested { refund_id });
    }
    if amount.is_zero() {
        return Err(OrderError::NonPositiveAmount);
    }
    if amount.currency() != order.amount.currency() {
        return Err(OrderError::CurrencyMismatch {
            expected: order.amount.currency(),
            received: amount.currency(),
        });
    }
    if !fits(&reason, MAX_REASON_CHARS) {
        return Err(OrderError::TextTooLong {
            field: "reason",
            max_chars: MAX_REASON_CHARS,
        });
    }
    if order.refunds.len() >= MAX_REFUNDS_PER_ORDER {
        return Err(OrderError::TooManyRefunds {
            max: MAX_REFUNDS_PER_ORDER,
        });
    }
    // What may go back: the payment of a paid order, or the late money a closed order holds.
    let owed = order
        .payment
        .as_ref()
        .map(|payment| payment.amount)
        .or_else(|| {
            order
                .status
                .is_closed()
                .then_some(order.held_for_refund)
                .flatten()
        })
        .ok_or(OrderError::InvalidTransition {
            from: order.status,
            command: "RequestRefund",
        })?;
    let refundable = owed
        .checked_sub(order.reserved)
        .map_err(OrderError::Ledger)?;
    if amount.amount_minor() > refundable.amount_minor() {
        return Err(OrderError::RefundExceedsRefundable {
            requested: amount,
            refundable,
        });
    }
    Ok(vec![OrderEvent::RefundRequested {
        refund_id,
        amount,
        reason,
        requested_at: at,
    }])
}

/// The facts of one refund success reported by the gateway.
pub(super) struct Confirmation {
    pub(super) refund_id: RefundId,
    pub(super) gateway_refund_id: Option<GatewayRefundId>,
    pub(super) gateway_event_id: Option<GatewayEventId>,
    pub(super) reported: Option<ReportedRefund>,
    pub(super) at: DateTime<Utc>,
}

/// A refund went through, if the gateway's account of it is the refund we asked for: the
/// order's charge, the amount requested, and the gateway's id for it when we learnt one. Any
/// difference is a conflict for review; the reservation stays until it is settled.
pub(super) fn confirm(
    order: &OrderDetails,
    confirmation: Confirmation,
) -> Result<Vec<OrderEvent>, OrderError> {
    let refund_id = confirmation.refund_id;
    let Some(record) = pending(order, refund_id)? else {
        return Ok(Vec::new());
    };
    if let Some(reported) = &confirmation.reported {
        ensure_requested_charge(order, &reported.charge_id)?;
        if reported.amount != record.amount {
            return Err(OrderError::RefundAmountMismatch {
                refund_id,
                expected: record.amount,
                received: reported.amount,
            });
        }
    }
    if let (Some(expected), Some(received)) =
        (&record.gateway_refund_id, &confirmation.gateway_refund_id)
    {
        if expected != received {
            return Err(OrderError::GatewayRefundMismatch {
                refund_id,
                expected: expected.clone(),
                received: received.clone(),
            });
        }
    }
    let order_after = order
        .after_refund(record.amount)
        .map_err(OrderError::Ledger)?;
    Ok(vec![OrderEvent::Refunded {
        refund_id,
        gateway_refund_id: confirmation.gateway_refund_id,
        gateway_event_id: confirmation.gateway_event_id,
        amount: record.amount,
        refunded_at: confirmation.at,
        order_after: Some(order_after),
    }])
}

/// The facts of one refund failure reported by the gateway.
pub(super) struct Failure {
    pub(super) refund_id: RefundId,
    pub(super) gateway_refund_id: Option<GatewayRefundId>,
    pub(super) gateway_event_id: Option<GatewayEventId>,
    pub(super) failure_code: Option<String>,
    pub(super) failure_message: Option<String>,
    pub(super) at: DateTime<Utc>,
}

pub(super) fn fail(order: &OrderDetails, failure: Failure) -> Result<Vec<OrderEvent>, OrderError> {
    let record = pending(order, failure.refund_id)?;
    Ok(record
        .map(|record| OrderEvent::RefundFailed {
            refund_id: failure.refund_id,
            gateway_refund_id: failure.gateway_refund_id,
            gateway_event_id: failure.gateway_event_id,
            failure_code: clip(failure.failure_code),
            failure_message: clip(failure.failure_message),
            failed_at: failure.at,
            released: Some(record.amount),
        })
        .into_iter()
        .collect())
}

/// The refund if it still awaits the gateway; `None` if it is already settled (a repeated
/// notice, answered with no events); an error if it was never requested.
fn pending(order: &OrderDetails, refund_id: RefundId) -> Result<Option<&RefundRecord>, OrderError> {
    let record = order
        .refund(&refund_id)
        .ok_or(OrderError::UnknownRefund { refund_id })?;
    match record.status {
        RefundStatus::Pending => Ok(Some(record)),
        RefundStatus::Succeeded | RefundStatus::Failed => Ok(None),
    }
}
