//! Rules for money arriving or failing to arrive. Money is never dropped: whatever the order's
//! status, a received amount becomes exactly one event that keeps it, once per charge.

use chrono::{DateTime, Utc};

use crate::ids::{ChargeId, GatewayEventId};
use crate::money::Money;
use crate::subscription::GrantedPeriod;
use crate::text::clip;

use super::error::OrderError;
use super::event::OrderEvent;
use super::state::OrderDetails;
use super::OrderStatus;

/// The facts of one payment notification from the gateway.
pub(super) struct Receipt {
    pub(super) charge_id: ChargeId,
    pub(super) gateway_event_id: Option<GatewayEventId>,
    pub(super) amount: Money,
    pub(super) transaction_no: Option<String>,
    pub(super) paid_at: DateTime<Utc>,
    pub(super) at: DateTime<Utc>,
    pub(super) membership: Option<GrantedPeriod>,
}

pub(super) fn receive(
    order: &OrderDetails,
    receipt: Receipt,
) -> Result<Vec<OrderEvent>, OrderError> {
    match order.status {
        OrderStatus::Created => Err(OrderError::InvalidTransition {
            from: order.status,
            command: "ConfirmPayment",
        }),
        OrderStatus::Pending => confirm_requested(order, receipt),
        OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded => {
            receive_after_payment(order, receipt)
        }
        OrderStatus::Expired | OrderStatus::Failed | OrderStatus::Cancelled => {
            receive_after_close(order, receipt)
        }
    }
}

/// The expected case: the requested charge pays the order. Anything but the exact amount
/// owed is kept for review instead of marking the order paid.
fn confirm_requested(
    order: &OrderDetails,
    receipt: Receipt,
) -> Result<Vec<OrderEvent>, OrderError> {
    ensure_requested_charge(order, &receipt.charge_id)?;
    if order.recorded_charges.contains(&receipt.charge_id) {
        return Ok(Vec::new());
    }
    if receipt.amount != order.amount {
        return Ok(vec![OrderEvent::PaymentAmountMismatch {
            charge_id: receipt.charge_id,
            gateway_event_id: receipt.gateway_event_id,
            expected: order.amount,
            received: receipt.amount,
            received_at: receipt.at,
        }]);
    }
    Ok(vec![OrderEvent::PaymentConfirmed {
        charge_id: receipt.charge_id,
        gateway_event_id: receipt.gateway_event_id,
        amount: receipt.amount,
        transaction_no: clip(receipt.transaction_no),
        paid_at: receipt.paid_at,
        recorded_at: receipt.at,
        membership: receipt.membership,
    }])
}

/// The order is paid already, so its one charge is recorded: that charge again is a
/// redelivery. Any other charge is another order's (or none of ours): a conflict for review,
/// never money of this order, which would count it twice. (Older logs hold
/// `DuplicatePaymentReceived` events for such charges; they still replay.)
fn receive_after_payment(
    order: &OrderDetails,
    receipt: Receipt,
) -> Result<Vec<OrderEvent>, OrderError> {
    if order.recorded_charges.contains(&receipt.charge_id) {
        return Ok(Vec::new());
    }
    ensure_requested_charge(order, &receipt.charge_id)?;
    Ok(Vec::new())
}

/// The order closed unpaid, but the customer paid anyway (e.g. scanned a stale QR code).
fn receive_after_close(
    order: &OrderDetails,
    receipt: Receipt,
) -> Result<Vec<OrderEvent>, OrderError> {
    // A charge belongs to the order that requested it: another order's charge named with
    // this order's number is a conflict for review, not money of this order (it would be
    // counted twice). An order closed before its charge was recorded takes any charge: it
    // can only be the one its creation asked for.
    if order.recorded_charges.contains(&receipt.charge_id) {
        return Ok(Vec::new());
    }
    if order.charge.is_some() {
        ensure_requested_charge(order, &receipt.charge_id)?;
    }
    Ok(vec![OrderEvent::LatePaymentReceived {
        charge_id: receipt.charge_id,
        gateway_event_id: receipt.gateway_event_id,
        amount: receipt.amount,
        status_at_arrival: order.status,
        received_at: receipt.at,
    }])
}

/// Fails the order's payment. Once a charge is requested, only that charge can fail it.
pub(super) fn fail(
    order: &OrderDetails,
    charge_id: ChargeId,
    gateway_event_id: Option<GatewayEventId>,
    failure_code: Option<String>,
    failure_message: Option<String>,
    at: DateTime<Utc>,
) -> Result<Vec<OrderEvent>, OrderError> {
    if order.charge.is_some() {
        ensure_requested_charge(order, &charge_id)?;
    }
    Ok(vec![OrderEvent::PaymentFailed {
        charge_id,
        gateway_event_id,
        failure_code: clip(failure_code),
        failure_message: clip(failure_message),
        failed_at: at,
    }])
}

pub(super) fn ensure_requested_charge(
    order: &OrderDetails,
    received: &ChargeId,
) -> Result<(), OrderError> {
    match &order.charge {
        Some(charge) if &charge.charge_id == received => Ok(()),
        Some(charge) => Err(OrderError::ChargeMismatch {
            expected: charge.charge_id.clone(),
            received: received.clone(),
        }),
        // Unreachable while Pending (ChargeRequested sets both), refused rather than trusted.
        None => Err(OrderError::InvalidTransition {
            from: order.status,
            command: "ConfirmPayment",
        }),
    }
}
