//! The order as rebuilt from its events, and read-only views of it for the server.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::ids::{ChargeId, GatewayEventId, OrderId, PlanId, RefundId, UserId};
use crate::money::Money;
use crate::plan::{Period, Tier};
use crate::subscription::GrantedPeriod;

use super::after_refund::still_owed;
use super::refund::RefundRecord;
use super::OrderStatus;

/// One order. Empty (`Default`) until `OrderCreated` is applied.
///
/// Invariants, checked in `decide` and asserted again in `apply`:
/// - succeeded refunds <= reserved refunds (pending + succeeded) <= paid amount;
/// - at most one payment is confirmed, and its amount equals the order amount;
/// - status is `Refunded` exactly when the succeeded refunds equal the paid amount.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub(super) details: Option<OrderDetails>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct OrderDetails {
    pub(super) order_id: OrderId,
    pub(super) user_id: UserId,
    pub(super) plan_id: PlanId,
    pub(super) plan_name: String,
    pub(super) tier: Tier,
    pub(super) period: Period,
    pub(super) amount: Money,
    pub(super) channel: Channel,
    pub(super) created_at: DateTime<Utc>,
    pub(super) status: OrderStatus,
    pub(super) charge: Option<Charge>,
    pub(super) payment: Option<Payment>,
    pub(super) refunds: Vec<RefundRecord>,
    /// Sum of succeeded refunds.
    pub(super) refunded: Money,
    /// Sum of pending and succeeded refunds: what can no longer be requested.
    pub(super) reserved: Money,
    /// Late or duplicate money that must be returned outside the normal refund flow.
    pub(super) held_for_refund: Option<Money>,
    pub(super) needs_review: bool,
    /// Charges whose money has already been recorded in some event, so a redelivery with a
    /// fresh webhook id still records it only once.
    pub(super) recorded_charges: BTreeSet<ChargeId>,
    /// Webhook events already handled; a command repeating one yields no events.
    pub(super) gateway_events: BTreeSet<GatewayEventId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Charge {
    pub(super) charge_id: ChargeId,
    pub(super) qr_code: String,
    pub(super) expires_at: DateTime<Utc>,
    pub(super) requested_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Payment {
    pub(super) charge_id: ChargeId,
    pub(super) amount: Money,
    pub(super) transaction_no: Option<String>,
    pub(super) paid_at: DateTime<Utc>,
    /// The membership period the payment bought, when it was recorded with it.
    #[serde(default)]
    pub(super) membership: Option<GrantedPeriod>,
}

impl OrderDetails {
    pub(super) fn refund(&self, refund_id: &RefundId) -> Option<&RefundRecord> {
        self.refunds
            .iter()
            .find(|record| &record.refund_id == refund_id)
    }
}

impl Order {
    /// `None` until the order is created.
    pub fn status(&self) -> Option<OrderStatus> {
        self.details.as_ref().map(|order| order.status)
    }

    pub fn order_id(&self) -> Option<OrderId> {
        self.details.as_ref().map(|order| order.order_id)
    }

    pub fn user_id(&self) -> Option<&UserId> {
        self.details.as_ref().map(|order| &order.user_id)
    }

    pub fn plan_id(&self) -> Option<&PlanId> {
        self.details.as_ref().map(|order| &order.plan_id)
    }

    pub fn plan_name(&self) -> Option<&str> {
        self.details.as_ref().map(|order| order.plan_name.as_str())
    }

    pub fn tier(&self) -> Option<Tier> {
        self.details.as_ref().map(|order| order.tier)
    }

    pub fn period(&self) -> Option<Period> {
        self.details.as_ref().map(|order| order.period)
    }

    pub fn channel(&self) -> Option<Channel> {
        self.details.as_ref().map(|order| order.channel)
    }

    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.details.as_ref().map(|order| order.created_at)
    }

    /// The amount owed: the plan price when the order was created.
    pub fn amount(&self) -> Option<Money> {
        self.details.as_ref().map(|order| order.amount)
    }

    fn charge(&self) -> Option<&Charge> {
        self.details
            .as_ref()
            .and_then(|order| order.charge.as_ref())
    }

    /// The charge requested at the gateway, once there is one.
    pub fn charge_id(&self) -> Option<&ChargeId> {
        self.charge().map(|charge| &charge.charge_id)
    }

    pub fn qr_code(&self) -> Option<&str> {
        self.charge().map(|charge| charge.qr_code.as_str())
    }

    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.charge().map(|charge| charge.expires_at)
    }

    fn payment(&self) -> Option<&Payment> {
        self.details
            .as_ref()
            .and_then(|order| order.payment.as_ref())
    }

    /// The membership period the confirmed payment bought, when it was recorded with it.
    pub fn granted_membership(&self) -> Option<GrantedPeriod> {
        self.payment().and_then(|payment| payment.membership)
    }

    /// The confirmed payment's amount; `None` until paid. Late, duplicate or mismatched money
    /// is never counted here.
    pub fn paid_amount(&self) -> Option<Money> {
        self.payment().map(|payment| payment.amount)
    }

    pub fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.payment().map(|payment| payment.paid_at)
    }

    pub fn transaction_no(&self) -> Option<&str> {
        self.payment()
            .and_then(|payment| payment.transaction_no.as_deref())
    }

    /// Sum of succeeded refunds; zero once created, `None` before.
    pub fn refunded_amount(&self) -> Option<Money> {
        self.details.as_ref().map(|order| order.refunded)
    }

    /// Sum of pending and succeeded refunds; zero once created, `None` before.
    pub fn refund_reserved(&self) -> Option<Money> {
        self.details.as_ref().map(|order| order.reserved)
    }

    /// What a new refund request may still take: paid minus reserved. `None` until paid.
    pub fn refundable(&self) -> Option<Money> {
        let order = self.details.as_ref()?;
        let payment = order.payment.as_ref()?;
        payment.amount.checked_sub(order.reserved).ok()
    }

    /// Late or duplicate money held on this order that must still go back to the customer;
    /// `None` when there is none. A closed order's refunds give back its late money.
    pub fn needs_refund(&self) -> Option<Money> {
        let order = self.details.as_ref()?;
        still_owed(order.held_for_refund, order.status, order.refunded)
    }

    /// Whether a person must look at this order (money arrived with the wrong amount).
    pub fn needs_review(&self) -> bool {
        self.details
            .as_ref()
            .is_some_and(|order| order.needs_review)
    }

    pub fn refund(&self, refund_id: &RefundId) -> Option<&RefundRecord> {
        self.details
            .as_ref()
            .and_then(|order| order.refund(refund_id))
    }

    pub fn refunds(&self) -> &[RefundRecord] {
        self.details
            .as_ref()
            .map_or(&[], |order| order.refunds.as_slice())
    }

    /// Whether the webhook event was already applied to this order.
    pub fn has_processed(&self, gateway_event_id: &GatewayEventId) -> bool {
        self.details
            .as_ref()
            .is_some_and(|order| order.gateway_events.contains(gateway_event_id))
    }
}
