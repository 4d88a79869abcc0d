//! All order rules start here: which command is allowed in which status. Every (status, command)
//! pair is routed explicitly, so a new status or command does not compile until each pair is
//! decided. Payment and refund details live in `payment.rs` and `refunding.rs`.

use chrono::{DateTime, Utc};

use crate::channel::Channel;
use crate::ids::{ChargeId, OrderId, UserId};
use crate::plan::Plan;
use crate::text::{fits, MAX_QR_CODE_CHARS, MAX_REASON_CHARS};

use super::command::OrderCommand;
use super::error::OrderError;
use super::event::OrderEvent;
use super::payment::{self, Receipt};
use super::refunding;
use super::state::{Order, OrderDetails};
use super::OrderStatus;

impl Order {
    /// Decides what `command` records, without changing the order. An empty list means the
    /// command was already handled (a redelivered webhook): success, nothing new to store.
    pub fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        let Some(order) = &self.details else {
            return create(command);
        };
        let already_seen = command
            .gateway_event_id()
            .is_some_and(|id| order.gateway_events.contains(id));
        if already_seen {
            return Ok(Vec::new());
        }
        route(order, command)
    }
}

fn create(command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
    match command {
        OrderCommand::Create {
            order_id,
            user_id,
            plan,
            channel,
            at,
        } => open(order_id, user_id, plan, channel, at),
        OrderCommand::RequestCharge { .. }
        | OrderCommand::ConfirmPayment { .. }
        | OrderCommand::FailPayment { .. }
        | OrderCommand::Expire { .. }
        | OrderCommand::Cancel { .. }
        | OrderCommand::RequestRefund { .. }
        | OrderCommand::ConfirmRefund { .. }
        | OrderCommand::FailRefund { .. } => Err(OrderError::NotCreated),
    }
}

fn route(order: &OrderDetails, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
    use OrderCommand as C;
    use OrderStatus as S;
    match (order.status, command) {
        (
            S::Created
            | S::Pending
            | S::Paid
            | S::PartiallyRefunded
            | S::Refunded
            | S::Expired
            | S::Failed
            | S::Cancelled,
            C::Create { .. },
        ) => Err(OrderError::AlreadyCreated),

        (
            S::Created,
            C::RequestCharge {
                charge_id,
                qr_code,
                expires_at,
                at,
            },
        ) => request_charge(charge_id, qr_code, expires_at, at),
        (
            S::Pending
            | S::Paid
            | S::PartiallyRefunded
            | S::Refunded
            | S::Expired
            | S::Failed
            | S::Cancelled,
            command @ C::RequestCharge { .. },
        ) => invalid(order, &command),

        // Before a charge exists there is nothing the gateway could be confirming; the
        // webhook is redelivered and succeeds once the charge is recorded.
        (S::Created, command @ C::ConfirmPayment { .. }) => invalid(order, &command),
        // Money is never refused once a charge exists: it is confirmed, or recorded as
        // mismatched, late or duplicate so that it can be reviewed or returned.
        (
            S::Pending
            | S::Paid
            | S::PartiallyRefunded
            | S::Refunded
            | S::Expired
            | S::Failed
            | S::Cancelled,
            C::ConfirmPayment {
                charge_id,
                gateway_event_id,
                amount,
                transaction_no,
                paid_at,
                at,
                membership,
            },
        ) => payment::receive(
            order,
            Receipt {
                charge_id,
                gateway_event_id,
                amount,
                transaction_no,
                paid_at,
                at,
                membership,
            },
        ),

        (
            S::Created | S::Pending,
            C::FailPayment {
                charge_id,
                gateway_event_id,
                failure_code,
                failure_message,
                at,
            },
        ) => payment::fail(
            order,
            charge_id,
            gateway_event_id,
            failure_code,
            failure_message,
            at,
        ),
        // The order is already closed unpaid; a failure notice changes nothing.
        (S::Expired | S::Failed | S::Cancelled, C::FailPayment { .. }) => Ok(Vec::new()),
        (S::Paid | S::PartiallyRefunded | S::Refunded, command @ C::FailPayment { .. }) => {
            invalid(order, &command)
        }

        (S::Created, C::Expire { at }) => Ok(vec![OrderEvent::OrderExpired { expired_at: at }]),
        (S::Pending, C::Expire { at }) => expire_pending(order, at),
        (
            S::Paid | S::PartiallyRefunded | S::Refunded | S::Expired | S::Failed | S::Cancelled,
            command @ C::Expire { .. },
        ) => invalid(order, &command),

        (S::Created | S::Pending, C::Cancel { reason, at }) => cancel(reason, at),
        (
            S::Paid | S::PartiallyRefunded | S::Refunded | S::Expired | S::Failed | S::Cancelled,
            command @ C::Cancel { .. },
        ) => invalid(order, &command),

        // A paid order gives back its payment; a closed one, the late money it holds.
        (
            S::Paid | S::PartiallyRefunded | S::Expired | S::Failed | S::Cancelled,
            C::RequestRefund {
                refund_id,
                amount,
                reason,
                at,
            },
        ) => refunding::request(order, refund_id, amount, reason, at),
        (S::Created | S::Pending | S::Refunded, command @ C::RequestRefund { .. }) => {
            invalid(order, &command)
        }

        (
            S::Paid | S::PartiallyRefunded | S::Refunded | S::Expired | S::Failed | S::Cancelled,
            C::ConfirmRefund {
                refund_id,
                gateway_refund_id,
                gateway_event_id,
                reported,
                at,
            },
        ) => refunding::confirm(
            order,
            refunding::Confirmation {
                refund_id,
                gateway_refund_id,
                gateway_event_id,
                reported,
                at,
            },
        ),
        (S::Created | S::Pending, command @ C::ConfirmRefund { .. }) => invalid(order, &command),

        (
            S::Paid | S::PartiallyRefunded | S::Refunded | S::Expired | S::Failed | S::Cancelled,
            C::FailRefund {
                refund_id,
                gateway_refund_id,
                gateway_event_id,
                failure_code,
                failure_message,
                at,
            },
        ) => refunding::fail(
            order,
            refunding::Failure {
                refund_id,
                gateway_refund_id,
                gateway_event_id,
                failure_code,
                failure_message,
                at,
            },
        ),
        (S::Created | S::Pending, command @ C::FailRefund { .. }) => invalid(order, &command),
    }
}

pub(super) fn invalid(
    order: &OrderDetails,
    command: &OrderCommand,
) -> Result<Vec<OrderEvent>, OrderError> {
    Err(OrderError::InvalidTransition {
        from: order.status,
        command: command.name(),
    })
}

fn open(
    order_id: OrderId,
    user_id: UserId,
    plan: Plan,
    channel: Channel,
    at: DateTime<Utc>,
) -> Result<Vec<OrderEvent>, OrderError> {
    if !plan.is_purchasable() {
        return Err(OrderError::NotPurchasable { plan_id: plan.id });
    }
    Ok(vec![OrderEvent::OrderCreated {
        order_id,
        user_id,
        plan_id: plan.id,
        plan_name: plan.name,
        tier: plan.tier,
        period: plan.period,
        amount: plan.price,
        channel,
        created_at: at,
    }])
}

fn request_charge(
    charge_id: ChargeId,
    qr_code: String,
    expires_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<Vec<OrderEvent>, OrderError> {
    if expires_at <= at {
        return Err(OrderError::ExpiryNotInFuture { expires_at, at });
    }
    if !fits(&qr_code, MAX_QR_CODE_CHARS) {
        return Err(OrderError::TextTooLong {
            field: "qr_code",
            max_chars: MAX_QR_CODE_CHARS,
        });
    }
    Ok(vec![OrderEvent::ChargeRequested {
        charge_id,
        qr_code,
        expires_at,
        requested_at: at,
    }])
}

/// A pending charge can still be paid until it expires, so closing it early would turn a
/// good payment into a late one.
fn expire_pending(order: &OrderDetails, at: DateTime<Utc>) -> Result<Vec<OrderEvent>, OrderError> {
    if let Some(charge) = &order.charge {
        if at < charge.expires_at {
            return Err(OrderError::NotYetExpired {
                expires_at: charge.expires_at,
            });
        }
    }
    Ok(vec![OrderEvent::OrderExpired { expired_at: at }])
}

fn cancel(reason: String, at: DateTime<Utc>) -> Result<Vec<OrderEvent>, OrderError> {
    if !fits(&reason, MAX_REASON_CHARS) {
        return Err(OrderError::TextTooLong {
            field: "reason",
            max_chars: MAX_REASON_CHARS,
        });
    }
    Ok(vec![OrderEvent::OrderCancelled {
        reason,
        cancelled_at: at,
    }])
}
