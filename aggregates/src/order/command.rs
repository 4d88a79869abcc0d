//! What may be asked of an order. Commands carry every outside fact (time, new ids, gateway
//! replies) as data, because deciding must not perform I/O or read the clock.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::ids::{ChargeId, GatewayEventId, GatewayRefundId, OrderId, RefundId, UserId};
use crate::money::Money;
use crate::plan::Plan;
use crate::subscription::GrantedPeriod;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderCommand {
    /// Open an order for `plan`; the amount owed is the plan's price at this moment.
    Create {
        order_id: OrderId,
        user_id: UserId,
        plan: Plan,
        channel: Channel,
        at: DateTime<Utc>,
    },
    /// Record the charge the server created at the gateway and the QR code to show.
    RequestCharge {
        charge_id: ChargeId,
        qr_code: String,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// The gateway reports that money was received for `charge_id`. `membership` is the
    /// period the payment buys, when the membership is activated with it.
    ConfirmPayment {
        charge_id: ChargeId,
        gateway_event_id: Option<GatewayEventId>,
        amount: Money,
        transaction_no: Option<String>,
        paid_at: DateTime<Utc>,
        at: DateTime<Utc>,
        membership: Option<GrantedPeriod>,
    },
    /// The gateway reports that the charge failed.
    FailPayment {
        charge_id: ChargeId,
        gateway_event_id: Option<GatewayEventId>,
        failure_code: Option<String>,
        failure_message: Option<String>,
        at: DateTime<Utc>,
    },
    /// Close an unpaid order whose QR code has run out.
    Expire { at: DateTime<Utc> },
    /// The customer or an operator abandons an unpaid order.
    Cancel { reason: String, at: DateTime<Utc> },
    /// Reserve part or all of the paid amount for a refund, before the gateway is called.
    RequestRefund {
        refund_id: RefundId,
        amount: Money,
        reason: String,
        at: DateTime<Utc>,
    },
    /// The gateway reports that a requested refund went through. `reported`, when the gateway
    /// said which charge and how much, must match the order's charge and the amount requested.
    ConfirmRefund {
        refund_id: RefundId,
        gateway_refund_id: Option<GatewayRefundId>,
        gateway_event_id: Option<GatewayEventId>,
        reported: Option<ReportedRefund>,
        at: DateTime<Utc>,
    },
    /// The gateway reports that a requested refund failed; its reservation is released.
    FailRefund {
        refund_id: RefundId,
        gateway_refund_id: Option<GatewayRefundId>,
        gateway_event_id: Option<GatewayEventId>,
        failure_code: Option<String>,
        failure_message: Option<String>,
        at: DateTime<Utc>,
    },
}

impl OrderCommand {
    /// The command's name, as reported in `OrderError::InvalidTransition`.
    pub const fn name(&self) -> &'static str {
        match self {
            OrderCommand::Create { .. } => "Create",
            OrderCommand::RequestCharge { .. } => "RequestCharge",
            OrderCommand::ConfirmPayment { .. } => "ConfirmPayment",
            OrderCommand::FailPayment { .. } => "FailPayment",
            OrderCommand::Expire { .. } => "Expire",
            OrderCommand::Cancel { .. } => "Cancel",
            OrderCommand::RequestRefund { .. } => "RequestRefund",
            OrderCommand::ConfirmRefund { .. } => "ConfirmRefund",
            OrderCommand::FailRefund { .. } => "FailRefund",
        }
    }

    /// The gateway webhook event this command came from, if any; used to drop redeliveries.
    pub fn gateway_event_id(&self) -> Option<&GatewayEventId> {
        match self {
            OrderCommand::ConfirmPayment {
                gateway_event_id, ..
            }
            | OrderCommand::FailPayment {
                gateway_event_id, ..
            }
            | OrderCommand::ConfirmRefund {
                gateway_event_id, ..
            }
            | OrderCommand::FailRefund {
                gateway_event_id, ..
            } => gateway_event_id.as_ref(),
            OrderCommand::Create { .. }
            | OrderCommand::RequestCharge { .. }
            | OrderCommand::Expire { .. }
            | OrderCommand::Cancel { .. }
            | OrderCommand::RequestRefund { .. } => None,
        }
    }
}

/// What the gateway says a refund was: of which charge, for how much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedRefund {
    pub charge_id: ChargeId,
    pub amount: Money,
}
