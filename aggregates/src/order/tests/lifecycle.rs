//! Creating, charging, expiring and cancelling orders, and the transitions that are refused.

use super::fixtures::*;
use crate::text::{MAX_QR_CODE_CHARS, MAX_REASON_CHARS};
use crate::{OrderCommand, OrderError, OrderEvent, OrderStatus};

#[test]
fn creating_an_order_records_the_plan_facts_and_its_price() {
    given(vec![])
        .when(create())
        .then_expect_events(vec![created()]);
}

#[test]
fn a_new_order_reports_its_facts_through_accessors() {
    let order = replay(&[created()]);
    assert_eq!(order.status(), Some(OrderStatus::Created));
    assert_eq!(order.order_id(), Some(order_id()));
    assert_eq!(order.user_id(), Some(&user()));
    assert_eq!(order.amount(), Some(cny(PRICE)));
    assert_eq!(order.plan_id().map(|id| id.as_str()), Some("pro-monthly"));
    assert_eq!(order.tier(), Some(crate::Tier::Pro));
    assert_eq!(order.period(), Some(crate::Period::Monthly));
    assert_eq!(order.paid_amount(), None);
    assert_eq!(order.refunded_amount(), Some(cny(0)));
    assert_eq!(order.refundable(), None);
    assert_eq!(order.needs_refund(), None);
    assert!(!order.needs_review());
}

#[test]
fn an_order_that_does_not_exist_has_no_status() {
    let order = crate::Order::default();
    assert_eq!(order.status(), None);
    assert_eq!(order.amount(), None);
    assert_eq!(order.refunded_amount(), None);
}

#[test]
fn ordering_a_free_plan_is_rejected() {
    let command = OrderCommand::Create {
        order_id: order_id(),
        user_id: user(),
        plan: plan("free-monthly"),
        channel: crate::Channel::WxPubQr,
        at: at(0),
    };
    given(vec![])
        .when(command)
        .then_expect_error(OrderError::NotPurchasable {
            plan_id: plan("free-monthly").id,
        });
}

#[test]
fn creating_an_order_twice_is_rejected() {
    given(vec![created()])
        .when(create())
        .then_expect_error(OrderError::AlreadyCreated);
}

#[test]
fn commands_before_creation_are_rejected() {
    let commands = [
        OrderCommand::Expire { at: at(1) },
        OrderCommand::Cancel {
            reason: "changed my mind".to_owned(),
            at: at(1),
        },
        confirm("ch_first", "evt_paid", cny(PRICE)),
        request_refund(1, 100),
        confirm_refund(1, "evt_refund"),
    ];
    for command in commands {
        given(vec![])
            .when(command)
            .then_expect_error(OrderError::NotCreated);
    }
}

#[test]
fn requesting_a_charge_makes_the_order_pending() {
    let command = OrderCommand::RequestCharge {
        charge_id: charge("ch_first"),
        qr_code: "https://qr.example/ch_first".to_owned(),
        expires_at: at(15),
        at: at(1),
    };
    given(vec![created()])
        .when(command)
        .then_expect_events(vec![charge_requested()]);
    let order = replay(&[created(), charge_requested()]);
    assert_eq!(order.status(), Some(OrderStatus::Pending));
    assert_eq!(order.charge_id(), Some(&charge("ch_first")));
    assert_eq!(order.expires_at(), Some(at(15)));
}

#[test]
fn a_charge_that_expires_before_it_is_requested_is_rejected() {
    let command = OrderCommand::RequestCharge {
        charge_id: charge("ch_first"),
        qr_code: "qr".to_owned(),
        expires_at: at(1),
        at: at(1),
    };
    given(vec![created()])
        .when(command)
        .then_expect_error(OrderError::ExpiryNotInFuture {
            expires_at: at(1),
            at: at(1),
        });
}

#[test]
fn an_oversized_qr_code_is_rejected() {
    let command = OrderCommand::RequestCharge {
        charge_id: charge("ch_first"),
        qr_code: "q".repeat(MAX_QR_CODE_CHARS + 1),
        expires_at: at(15),
        at: at(1),
    };
    given(vec![created()])
        .when(command)
        .then_expect_error(OrderError::TextTooLong {
            field: "qr_code",
            max_chars: MAX_QR_CODE_CHARS,
        });
}

#[test]
fn requesting_a_second_charge_is_rejected() {
    let command = OrderCommand::RequestCharge {
        charge_id: charge("ch_second"),
        qr_code: "qr".to_owned(),
        expires_at: at(30),
        at: at(2),
    };
    given(vec![created(), charge_requested()])
        .when(command)
        .then_expect_error(OrderError::InvalidTransition {
            from: OrderStatus::Pending,
            command: "RequestCharge",
        });
}

#[test]
fn a_created_order_can_expire_without_a_charge() {
    given(vec![created()])
        .when(OrderCommand::Expire { at: at(1) })
        .then_expect_events(vec![OrderEvent::OrderExpired { expired_at: at(1) }]);
}

#[test]
fn a_pending_order_cannot_expire_before_its_charge_does() {
    given(vec![created(), charge_requested()])
        .when(OrderCommand::Expire { at: at(14) })
        .then_expect_error(OrderError::NotYetExpired { expires_at: at(15) });
}

#[test]
fn a_pending_order_expires_once_its_charge_has() {
    given(vec![created(), charge_requested()])
        .when(OrderCommand::Expire { at: at(15) })
        .then_expect_events(vec![OrderEvent::OrderExpired { expired_at: at(15) }]);
}

#[test]
fn an_expired_order_cannot_expire_again() {
    given(vec![
        created(),
        OrderEvent::OrderExpired { expired_at: at(1) },
    ])
    .when(OrderCommand::Expire { at: at(2) })
    .then_expect_error(OrderError::InvalidTransition {
        from: OrderStatus::Expired,
        command: "Expire",
    });
}

#[test]
fn a_pending_order_can_be_cancelled() {
    let command = OrderCommand::Cancel {
        reason: "changed my mind".to_owned(),
        at: at(3),
    };
    given(vec![created(), charge_requested()])
        .when(command)
        .then_expect_events(vec![OrderEvent::OrderCancelled {
            reason: "changed my mind".to_owned(),
            cancelled_at: at(3),
        }]);
}

#[test]
fn a_paid_order_cannot_be_cancelled() {
    let command = OrderCommand::Cancel {
        reason: "too late".to_owned(),
        at: at(30),
    };
    given(paid_order())
        .when(command)
        .then_expect_error(OrderError::InvalidTransition {
            from: OrderStatus::Paid,
            command: "Cancel",
        });
}

#[test]
fn an_oversized_cancel_reason_is_rejected() {
    let command = OrderCommand::Cancel {
        reason: "r".repeat(MAX_REASON_CHARS + 1),
        at: at(3),
    };
    given(vec![created()])
        .when(command)
        .then_expect_error(OrderError::TextTooLong {
            field: "reason",
            max_chars: MAX_REASON_CHARS,
        });
}

#[test]
fn a_cancelled_order_accepts_no_new_charge() {
    let cancelled = OrderEvent::OrderCancelled {
        reason: "changed my mind".to_owned(),
        cancelled_at: at(3),
    };
    let command = OrderCommand::RequestCharge {
        charge_id: charge("ch_second"),
        qr_code: "qr".to_owned(),
        expires_at: at(30),
        at: at(4),
    };
    given(vec![created(), cancelled])
        .when(command)
        .then_expect_error(OrderError::InvalidTransition {
            from: OrderStatus::Cancelled,
            command: "RequestCharge",
        });
}

#[test]
fn order_events_are_stored_externally_tagged_by_variant_name() {
    let json = serde_json::to_value(OrderEvent::OrderExpired { expired_at: at(1) }).unwrap();
    assert_eq!(
        json,
        serde_json::json!({ "OrderExpired": { "expired_at": "2026-01-01T00:01:00Z" } })
    );
    for event in [created(), charge_requested(), payment_confirmed()] {
        let json = serde_json::to_value(&event).unwrap();
        assert!(json.get(event.event_type_name()).is_some());
        assert_eq!(serde_json::from_value::<OrderEvent>(json).unwrap(), event);
    }
}

#[test]
fn order_events_name_themselves_for_the_store() {
    use cqrs_es::DomainEvent;
    let event = payment_confirmed();
    assert_eq!(event.event_type(), "PaymentConfirmed");
    // 1.1 added the membership period the payment bought.
    assert_eq!(event.event_version(), "1.1");
    let legacy = serde_json::json!({"PaymentConfirmed": {
        "charge_id": "ch_first", "gateway_event_id": "evt_paid",
        "amount": {"amount_minor": PRICE, "currency": "CNY"},
        "transaction_no": "2026010122001",
        "paid_at": at(5), "recorded_at": at(6)
    }});
    assert_eq!(serde_json::from_value::<OrderEvent>(legacy).unwrap(), event);
    assert_eq!(
        OrderEvent::OrderExpired { expired_at: at(9) }.event_version(),
        "1.0"
    );
}

#[test]
fn an_order_snapshot_round_trips_through_json() {
    let order = replay(&paid_order());
    let json = serde_json::to_string(&order).unwrap();
    assert_eq!(serde_json::from_str::<crate::Order>(&json).unwrap(), order);
}

#[test]
fn statuses_have_stable_names() {
    assert_eq!(
        OrderStatus::PartiallyRefunded.as_str(),
        "partially_refunded"
    );
    assert_eq!(OrderStatus::Cancelled.to_string(), "cancelled");
    assert_eq!(
        serde_json::to_value(OrderStatus::PartiallyRefunded).unwrap(),
        serde_json::json!("partially_refunded")
    );
}
