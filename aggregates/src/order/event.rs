//! What happened to an order. Each event carries every fact a view needs, so projections never
//! load other data, and the serde form (externally tagged, `{"OrderCreated": {...}}`) is what
//! the event store keeps: renaming a variant or a field breaks stored history.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::ids::{ChargeId, GatewayEventId, GatewayRefundId, OrderId, PlanId, RefundId, UserId};
use crate::money::Money;
use crate::plan::{Period, Tier};
use crate::subscription::GrantedPeriod;

use super::{OrderAfterRefund, OrderStatus};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderEvent {
    OrderCreated {
        order_id: OrderId,
        user_id: UserId,
        plan_id: PlanId,
        plan_name: String,
        tier: Tier,
        period: Period,
        amount: Money,
        channel: Channel,
        created_at: DateTime<Utc>,
    },
    ChargeRequested {
        charge_id: ChargeId,
        qr_code: String,
        expires_at: DateTime<Utc>,
        requested_at: DateTime<Utc>,
    },
    /// The order's full amount arrived on its own charge. At most one per order. Version 1.1
    /// adds the membership period the payment bought (committed with it); 1.0 events, and a
    /// payment whose membership was refused, have none.
    PaymentConfirmed {
        charge_id: ChargeId,
        gateway_event_id: Option<GatewayEventId>,
        amount: Money,
        transaction_no: Option<String>,
        paid_at: DateTime<Utc>,
        recorded_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        membership: Option<GrantedPeriod>,
    },
    /// Money arrived but not the amount owed. Kept as a fact and flagged for a person to
    /// review; the order's status does not change.
    PaymentAmountMismatch {
        charge_id: ChargeId,
        gateway_event_id: Option<GatewayEventId>,
        expected: Money,
        received: Money,
        received_at: DateTime<Utc>,
    },
    /// Money arrived after the order was closed unpaid. It must be given back.
    LatePaymentReceived {
        charge_id: ChargeId,
        gateway_event_id: Option<GatewayEventId>,
        amount: Money,
        status_at_arrival: OrderStatus,
        received_at: DateTime<Utc>,
    },
    /// A second, different charge paid an order that was already paid. It must be given back.
    DuplicatePaymentReceived {
        charge_id: ChargeId,
        gateway_event_id: Option<GatewayEventId>,
        amount: Money,
        received_at: DateTime<Utc>,
    },
    PaymentFailed {
        charge_id: ChargeId,
        gateway_event_id: Option<GatewayEventId>,
        failure_code: Option<String>,
        failure_message: Option<String>,
        failed_at: DateTime<Utc>,
    },
    OrderExpired {
        expired_at: DateTime<Utc>,
    },
    OrderCancelled {
        reason: String,
        cancelled_at: DateTime<Utc>,
    },
    /// `amount` is now reserved: it counts against the refundable balance until the refund
    /// succeeds or fails.
    RefundRequested {
        refund_id: RefundId,
        amount: Money,
        reason: String,
        requested_at: DateTime<Utc>,
    },
    /// The requested refund went through; `amount` repeats the requested amount. Version 1.1
    /// adds the order as the refund left it, so readers copy it instead of re-deriving it;
    /// 1.0 events have none.
    Refunded {
        refund_id: RefundId,
        gateway_refund_id: Option<GatewayRefundId>,
        gateway_event_id: Option<GatewayEventId>,
        amount: Money,
        refunded_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order_after: Option<OrderAfterRefund>,
    },
    /// The gateway refused the refund. Version 1.1 adds the reserved amount it releases (the
    /// request's amount); 1.0 events have none.
    RefundFailed {
        refund_id: RefundId,
        gateway_refund_id: Option<GatewayRefundId>,
        gateway_event_id: Option<GatewayEventId>,
        failure_code: Option<String>,
        failure_message: Option<String>,
        failed_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        released: Option<Money>,
    },
}

impl OrderEvent {
    /// The variant name, which is also the key of the stored JSON object.
    pub const fn event_type_name(&self) -> &'static str {
        match self {
            OrderEvent::OrderCreated { .. } => "OrderCreated",
            OrderEvent::ChargeRequested { .. } => "ChargeRequested",
            OrderEvent::PaymentConfirmed { .. } => "PaymentConfirmed",
            OrderEvent::PaymentAmountMismatch { .. } => "PaymentAmountMismatch",
            OrderEvent::LatePaymentReceived { .. } => "LatePaymentReceived",
            OrderEvent::DuplicatePaymentReceived { .. } => "DuplicatePaymentReceived",
            OrderEvent::PaymentFailed { .. } => "PaymentFailed",
            OrderEvent::OrderExpired { .. } => "OrderExpired",
            OrderEvent::OrderCancelled { .. } => "OrderCancelled",
            OrderEvent::RefundRequested { .. } => "RefundRequested",
            OrderEvent::Refunded { .. } => "Refunded",
            OrderEvent::RefundFailed { .. } => "RefundFailed",
        }
    }

    /// The gateway webhook event this fact came from, if any.
    pub fn gateway_event_id(&self) -> Option<&GatewayEventId> {
        match self {
            OrderEvent::PaymentConfirmed {
                gateway_event_id, ..
            }
            | OrderEvent::PaymentAmountMismatch {
                gateway_event_id, ..
            }
            | OrderEvent::LatePaymentReceived {
                gateway_event_id, ..
            }
            | OrderEvent::DuplicatePaymentReceived {
                gateway_event_id, ..
            }
            | OrderEvent::PaymentFailed {
                gateway_event_id, ..
            }
            | OrderEvent::Refunded {
                gateway_event_id, ..
            }
            | OrderEvent::RefundFailed {
                gateway_event_id, ..
            } => gateway_event_id.as_ref(),
            OrderEvent::OrderCreated { .. }
            | OrderEvent::ChargeRequested { .. }
            | OrderEvent::OrderExpired { .. }
            | OrderEvent::OrderCancelled { .. }
            | OrderEvent::RefundRequested { .. } => None,
        }
    }
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> String {
        self.event_type_name().to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            OrderEvent::PaymentConfirmed { .. }
            | OrderEvent::Refunded { .. }
            | OrderEvent::RefundFailed { .. } => "1.1".to_owned(),
            _ => "1.0".to_owned(),
        }
    }
}
