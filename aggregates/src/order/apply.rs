//! Folding events into the order's state. Never fails and never decides: every rule was
//! checked by `decide` before the event existed, and the assertions here check it again.

use std::collections::BTreeSet;

use crate::money::{Money, MoneyError};

use super::event::OrderEvent;
use super::refund::{RefundRecord, RefundStatus};
use super::state::{Charge, Order, OrderDetails, Payment};
use super::OrderStatus;

impl Order {
    pub fn apply(&mut self, event: &OrderEvent) {
        if let OrderEvent::OrderCreated {
            order_id,
            user_id,
            plan_id,
            plan_name,
            tier,
            period,
            amount,
            channel,
            created_at,
        } = event
        {
            debug_assert!(self.details.is_none(), "an order is created once");
            self.details = Some(OrderDetails {
                order_id: *order_id,
                user_id: user_id.clone(),
                plan_id: plan_id.clone(),
                plan_name: plan_name.clone(),
                tier: *tier,
                period: *period,
                amount: *amount,
                channel: *channel,
                created_at: *created_at,
                status: OrderStatus::Created,
                charge: None,
                payment: None,
                refunds: Vec::new(),
                refunded: Money::zero(amount.currency()),
                reserved: Money::zero(amount.currency()),
                held_for_refund: None,
                needs_review: false,
                recorded_charges: BTreeSet::new(),
                gateway_events: BTreeSet::new(),
            });
            return;
        }
        let Some(order) = self.details.as_mut() else {
            debug_assert!(
                false,
                "{} applied before OrderCreated",
                event.event_type_name()
            );
            return;
        };
        if let Some(gateway_event_id) = event.gateway_event_id() {
            order.gateway_events.insert(gateway_event_id.clone());
        }
        order.apply(event);
        order.assert_ledger();
    }
}

impl OrderDetails {
    fn apply(&mut self, event: &OrderEvent) {
        match event {
            // Handled by `Order::apply`, which owns the empty state.
            OrderEvent::OrderCreated { .. } => {}
            OrderEvent::ChargeRequested {
                charge_id,
                qr_code,
                expires_at,
                requested_at,
            } => {
                self.status = OrderStatus::Pending;
                self.charge = Some(Charge {
                    charge_id: charge_id.clone(),
                    qr_code: qr_code.clone(),
                    expires_at: *expires_at,
                    requested_at: *requested_at,
                });
            }
            OrderEvent::PaymentConfirmed {
                charge_id,
                amount,
                transaction_no,
                paid_at,
                membership,
                ..
            } => {
                debug_assert!(self.payment.is_none(), "a second payment was confirmed");
                debug_assert_eq!(*amount, self.amount, "confirmed amount differs from order");
                self.status = OrderStatus::Paid;
                self.recorded_charges.insert(charge_id.clone());
                self.payment = Some(Payment {
                    membership: *membership,
                    charge_id: charge_id.clone(),
                    amount: *amount,
                    transaction_no: transaction_no.clone(),
                    paid_at: *paid_at,
                });
            }
            OrderEvent::PaymentAmountMismatch { charge_id, .. } => {
                self.recorded_charges.insert(charge_id.clone());
                self.needs_review = true;
            }
            OrderEvent::LatePaymentReceived {
                charge_id, amount, ..
            }
            | OrderEvent::DuplicatePaymentReceived {
                charge_id, amount, ..
            } => {
                self.recorded_charges.insert(charge_id.clone());
                self.hold_for_refund(*amount);
            }
            OrderEvent::PaymentFailed { .. } => self.status = OrderStatus::Failed,
            OrderEvent::OrderExpired { .. } => self.status = OrderStatus::Expired,
            OrderEvent::OrderCancelled { .. } => self.status = OrderStatus::Cancelled,
            OrderEvent::RefundRequested {
                refund_id,
                amount,
                reason,
                requested_at,
            } => {
                self.reserved = settled(self.reserved.checked_add(*amount), self.reserved);
                self.refunds.push(RefundRecord {
                    refund_id: *refund_id,
                    amount: *amount,
                    reason: reason.clone(),
                    status: RefundStatus::Pending,
                    requested_at: *requested_at,
                    gateway_refund_id: None,
                    settled_at: None,
                    failure_code: None,
                    failure_message: None,
                });
            }
            OrderEvent::Refunded {
                refund_id,
                gateway_refund_id,
                amount,
                refunded_at,
                order_after,
                ..
            } => {
                if let Some(record) = self.refund_mut(refund_id) {
                    debug_assert_eq!(record.status, RefundStatus::Pending);
                    debug_assert_eq!(record.amount, *amount, "refund settled for another amount");
                    record.status = RefundStatus::Succeeded;
                    record.gateway_refund_id = gateway_refund_id.clone();
                    record.settled_at = Some(*refunded_at);
                }
                // A 1.0 event does not say what it left: the rule that decided 1.1 events
                // derives it, and checks a 1.1 event's account against it.
                let derived = self.after_refund(*amount);
                debug_assert!(derived.is_ok(), "ledger arithmetic failed: {derived:?}");
                debug_assert!(
                    order_after.is_none() || order_after.as_ref() == derived.as_ref().ok(),
                    "the refund's account of the order differs from the rule: {order_after:?}"
                );
                if let Some(after) = order_after.or(derived.ok()) {
                    self.refunded = after.refunded_total;
                    self.status = after.status;
                }
            }
            OrderEvent::RefundFailed {
                refund_id,
                gateway_refund_id,
                failure_code,
                failure_message,
                failed_at,
                released,
                ..
            } => {
                let mut requested = None;
                if let Some(record) = self.refund_mut(refund_id) {
                    debug_assert_eq!(record.status, RefundStatus::Pending);
                    record.status = RefundStatus::Failed;
                    record.gateway_refund_id = gateway_refund_id.clone();
                    record.settled_at = Some(*failed_at);
                    record.failure_code = failure_code.clone();
                    record.failure_message = failure_message.clone();
                    requested = Some(record.amount);
                }
                // A 1.0 event does not name the amount: the request's record holds it.
                debug_assert!(
                    released.is_none() || *released == requested,
                    "a failed refund released another amount than it reserved"
                );
                if let Some(amount) = released.or(requested) {
                    self.reserved = settled(self.reserved.checked_sub(amount), self.reserved);
                }
            }
        }
    }

    fn refund_mut(&mut self, refund_id: &crate::ids::RefundId) -> Option<&mut RefundRecord> {
        let record = self
            .refunds
            .iter_mut()
            .find(|record| &record.refund_id == refund_id);
        debug_assert!(
            record.is_some(),
            "refund {refund_id} settled before it was requested"
        );
        record
    }

    /// Late and duplicate money adds up; if it cannot be added (another currency), the order is
    /// sent for review rather than losing the amount silently.
    fn hold_for_refund(&mut self, amount: Money) {
        self.held_for_refund = match self.held_for_refund {
            None => Some(amount),
            Some(held) => match held.checked_add(amount) {
                Ok(total) => Some(total),
                Err(_) => {
                    self.needs_review = true;
                    Some(held)
                }
            },
        };
    }

    /// Paired with the checks in `decide`: the refund ledger never passes the paid amount.
    fn assert_ledger(&self) {
        let paid = self
            .payment
            .as_ref()
            .map_or(0, |payment| payment.amount.amount_minor());
        // A closed order's refunds give back the late money it holds.
        let owed = if self.status.is_closed() {
            self.held_for_refund.map_or(0, |held| held.amount_minor())
        } else {
            paid
        };
        debug_assert!(self.refunded.amount_minor() <= self.reserved.amount_minor());
        debug_assert!(
            self.reserved.amount_minor() <= owed,
            "refunds reserved beyond what is owed"
        );
        debug_assert_eq!(
            self.status == OrderStatus::Refunded,
            paid > 0 && self.refunded.amount_minor() == paid,
        );
    }
}

/// Takes the result of ledger arithmetic that `decide` already proved safe; on the impossible
/// failure, debug builds stop and release builds keep the previous total.
fn settled(result: Result<Money, MoneyError>, previous: Money) -> Money {
    debug_assert!(result.is_ok(), "ledger arithmetic failed: {result:?}");
    result.unwrap_or(previous)
}
