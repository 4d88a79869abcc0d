//! Shared builders so each example states only what matters to its rule.

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::{AggregateTestExecutor, TestFramework};
use uuid::Uuid;

use crate::{
    ChargeId, Currency, GatewayEventId, Money, Order, OrderAfterRefund, OrderCommand, OrderEvent,
    OrderId, OrderStatus, Plan, PlanCatalog, PlanId, RefundId, UserId,
};

/// Minutes after a fixed instant, so examples read as a timeline.
pub fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes)
}

pub fn order_id() -> OrderId {
    OrderId::from_uuid(Uuid::from_u128(0x1111))
}

pub fn refund_id(n: u128) -> RefundId {
    RefundId::from_uuid(Uuid::from_u128(0x2000 + n))
}

pub fn user() -> UserId {
    UserId::parse("alice@example.com").unwrap()
}

pub fn plan(id: &str) -> Plan {
    PlanCatalog::standard()
        .find(&PlanId::parse(id).unwrap())
        .cloned()
        .unwrap()
}

pub fn cny(amount_minor: i64) -> Money {
    Money::new(amount_minor, Currency::Cny).unwrap()
}

/// The price of pro-monthly, the plan every example buys.
pub const PRICE: i64 = 9_900;

pub fn charge(text: &str) -> ChargeId {
    ChargeId::parse(text).unwrap()
}

pub fn event_id(text: &str) -> Option<GatewayEventId> {
    Some(GatewayEventId::parse(text).unwrap())
}

pub fn given(events: Vec<OrderEvent>) -> AggregateTestExecutor<Order> {
    TestFramework::<Order>::with(()).given(events)
}

/// Replays events into a fresh order, as the store does on load.
pub fn replay(events: &[OrderEvent]) -> Order {
    let mut order = Order::default();
    for event in events {
        order.apply(event);
    }
    order
}

pub fn create() -> OrderCommand {
    OrderCommand::Create {
        order_id: order_id(),
        user_id: user(),
        plan: plan("pro-monthly"),
        channel: crate::Channel::AlipayQr,
        at: at(0),
    }
}

pub fn created() -> OrderEvent {
    OrderEvent::OrderCreated {
        order_id: order_id(),
        user_id: user(),
        plan_id: PlanId::parse("pro-monthly").unwrap(),
        plan_name: "Pro (monthly)".to_owned(),
        tier: crate::Tier::Pro,
        period: crate::Period::Monthly,
        amount: cny(PRICE),
        channel: crate::Channel::AlipayQr,
        created_at: at(0),
    }
}

pub fn charge_requested() -> OrderEvent {
    OrderEvent::ChargeRequested {
        charge_id: charge("ch_first"),
        qr_code: "https://qr.example/ch_first".to_owned(),
        expires_at: at(15),
        requested_at: at(1),
    }
}

pub fn confirm(charge_id: &str, event: &str, amount: Money) -> OrderCommand {
    OrderCommand::ConfirmPayment {
        charge_id: charge(charge_id),
        gateway_event_id: event_id(event),
        amount,
        transaction_no: Some("2026010122001".to_owned()),
        paid_at: at(5),
        at: at(6),
        membership: None,
    }
}

pub fn payment_confirmed() -> OrderEvent {
    OrderEvent::PaymentConfirmed {
        charge_id: charge("ch_first"),
        gateway_event_id: event_id("evt_paid"),
        amount: cny(PRICE),
        transaction_no: Some("2026010122001".to_owned()),
        paid_at: at(5),
        recorded_at: at(6),
        membership: None,
    }
}

/// Created, charged and paid: the starting point of every refund example.
pub fn paid_order() -> Vec<OrderEvent> {
    vec![created(), charge_requested(), payment_confirmed()]
}

pub fn request_refund(n: u128, amount_minor: i64) -> OrderCommand {
    OrderCommand::RequestRefund {
        refund_id: refund_id(n),
        amount: cny(amount_minor),
        reason: "customer asked".to_owned(),
        at: at(100),
    }
}

pub fn refund_requested(n: u128, amount_minor: i64) -> OrderEvent {
    OrderEvent::RefundRequested {
        refund_id: refund_id(n),
        amount: cny(amount_minor),
        reason: "customer asked".to_owned(),
        requested_at: at(100),
    }
}

pub fn confirm_refund(n: u128, event: &str) -> OrderCommand {
    OrderCommand::ConfirmRefund {
        refund_id: refund_id(n),
        gateway_refund_id: None,
        gateway_event_id: event_id(event),
        reported: None,
        at: at(200),
    }
}

/// A refund of `amount_minor` went through and left the order as `after` says.
pub fn refunded(n: u128, event: &str, amount_minor: i64, after: OrderAfterRefund) -> OrderEvent {
    OrderEvent::Refunded {
        refund_id: refund_id(n),
        gateway_refund_id: None,
        gateway_event_id: event_id(event),
        amount: cny(amount_minor),
        refunded_at: at(200),
        order_after: Some(after),
    }
}

/// What a refund leaves of a paid order holding no other money, once `refunded_total_minor`
/// of its payment went back.
pub fn partly_refunded(refunded_total_minor: i64) -> OrderAfterRefund {
    OrderAfterRefund {
        status: OrderStatus::PartiallyRefunded,
        refunded_total: cny(refunded_total_minor),
        needs_refund: cny(0),
    }
}

/// What the refund completing the payment leaves of a paid order holding no other money.
pub fn fully_refunded() -> OrderAfterRefund {
    OrderAfterRefund {
        status: OrderStatus::Refunded,
        refunded_total: cny(PRICE),
        needs_refund: cny(0),
    }
}

/// The event as version 1.0 stored it, before refunds said what they left or released.
pub fn as_stored_by_1_0(event: OrderEvent) -> OrderEvent {
    match event {
        OrderEvent::Refunded {
            refund_id,
            gateway_refund_id,
            gateway_event_id,
            amount,
            refunded_at,
            ..
        } => OrderEvent::Refunded {
            refund_id,
            gateway_refund_id,
            gateway_event_id,
            amount,
            refunded_at,
            order_after: None,
        },
        OrderEvent::RefundFailed {
            refund_id,
            gateway_refund_id,
            gateway_event_id,
            failure_code,
            failure_message,
            failed_at,
            ..
        } => OrderEvent::RefundFailed {
            refund_id,
            gateway_refund_id,
            gateway_event_id,
            failure_code,
            failure_message,
            failed_at,
            released: None,
        },
        other => other,
    }
}

pub fn fail_refund(n: u128, event: &str) -> OrderCommand {
    OrderCommand::FailRefund {
        refund_id: refund_id(n),
        gateway_refund_id: None,
        gateway_event_id: event_id(event),
        failure_code: Some("insufficient_balance".to_owned()),
        failure_message: None,
        at: at(200),
    }
}

/// The gateway refused refund `n`, releasing the `released_minor` it had reserved.
pub fn refund_failed(n: u128, event: &str, released_minor: i64) -> OrderEvent {
    OrderEvent::RefundFailed {
        refund_id: refund_id(n),
        gateway_refund_id: None,
        gateway_event_id: event_id(event),
        failure_code: Some("insufficient_balance".to_owned()),
        failure_message: None,
        failed_at: at(200),
        released: Some(cny(released_minor)),
    }
}
