//! What refund events carry for their readers: the order a successful refund leaves, and the
//! reservation a failed one releases; and that events stored before they carried it (1.0)
//! still fold to the same order.

use super::fixtures::*;
use crate::{OrderAfterRefund, OrderEvent, OrderStatus};

fn with(extra: Vec<OrderEvent>) -> Vec<OrderEvent> {
    let mut events = paid_order();
    events.extend(extra);
    events
}

/// Money that reached an order after it expired unpaid.
fn late_on_expired_order() -> Vec<OrderEvent> {
    vec![
        created(),
        charge_requested(),
        OrderEvent::OrderExpired { expired_at: at(15) },
        OrderEvent::LatePaymentReceived {
            charge_id: charge("ch_first"),
            gateway_event_id: event_id("evt_late"),
            amount: cny(PRICE),
            status_at_arrival: OrderStatus::Expired,
            received_at: at(20),
        },
    ]
}

#[test]
fn a_partial_refund_says_it_left_the_order_partially_refunded() {
    given(with(vec![refund_requested(1, 3_000)]))
        .when(confirm_refund(1, "evt_refund"))
        .then_expect_events(vec![refunded(
            1,
            "evt_refund",
            3_000,
            OrderAfterRefund {
                status: OrderStatus::PartiallyRefunded,
                refunded_total: cny(3_000),
                needs_refund: cny(0),
            },
        )]);
}

#[test]
fn the_refund_completing_the_payment_says_it_left_the_order_refunded() {
    given(with(vec![
        refund_requested(1, 3_000),
        refunded(1, "evt_refund_1", 3_000, partly_refunded(3_000)),
        refund_requested(2, PRICE - 3_000),
    ]))
    .when(confirm_refund(2, "evt_refund_2"))
    .then_expect_events(vec![refunded(
        2,
        "evt_refund_2",
        PRICE - 3_000,
        OrderAfterRefund {
            status: OrderStatus::Refunded,
            refunded_total: cny(PRICE),
            needs_refund: cny(0),
        },
    )]);
}

#[test]
fn giving_late_money_back_says_the_order_stays_expired_and_what_it_still_owes() {
    let mut events = late_on_expired_order();
    events.push(refund_requested(1, 4_000));
    given(events.clone())
        .when(confirm_refund(1, "evt_refund_1"))
        .then_expect_events(vec![refunded(
            1,
            "evt_refund_1",
            4_000,
            OrderAfterRefund {
                status: OrderStatus::Expired,
                refunded_total: cny(4_000),
                needs_refund: cny(PRICE - 4_000),
            },
        )]);
    events.push(refunded(
        1,
        "evt_refund_1",
        4_000,
        OrderAfterRefund {
            status: OrderStatus::Expired,
            refunded_total: cny(4_000),
            needs_refund: cny(PRICE - 4_000),
        },
    ));
    events.push(refund_requested(2, PRICE - 4_000));
    given(events)
        .when(confirm_refund(2, "evt_refund_2"))
        .then_expect_events(vec![refunded(
            2,
            "evt_refund_2",
            PRICE - 4_000,
            OrderAfterRefund {
                status: OrderStatus::Expired,
                refunded_total: cny(PRICE),
                needs_refund: cny(0),
            },
        )]);
}

#[test]
fn refunding_a_paid_order_says_its_duplicate_money_is_still_owed() {
    let duplicate = OrderEvent::DuplicatePaymentReceived {
        charge_id: charge("ch_second"),
        gateway_event_id: event_id("evt_duplicate"),
        amount: cny(PRICE),
        received_at: at(30),
    };
    given(with(vec![duplicate, refund_requested(1, PRICE)]))
        .when(confirm_refund(1, "evt_refund"))
        .then_expect_events(vec![refunded(
            1,
            "evt_refund",
            PRICE,
            OrderAfterRefund {
                status: OrderStatus::Refunded,
                refunded_total: cny(PRICE),
                needs_refund: cny(PRICE),
            },
        )]);
}

#[test]
fn a_failed_refund_says_what_it_released() {
    given(with(vec![refund_requested(1, 3_000)]))
        .when(fail_refund(1, "evt_fail"))
        .then_expect_events(vec![refund_failed(1, "evt_fail", 3_000)]);
}

#[test]
fn refund_events_are_version_1_1_and_their_1_0_form_still_loads() {
    use cqrs_es::DomainEvent;
    let success = refunded(1, "evt_refund", PRICE, fully_refunded());
    let failure = refund_failed(1, "evt_fail", PRICE);
    assert_eq!(success.event_version(), "1.1");
    assert_eq!(failure.event_version(), "1.1");
    let stored = serde_json::to_value(&success).unwrap();
    assert_eq!(
        stored["Refunded"]["order_after"],
        serde_json::json!({
            "status": "refunded",
            "refunded_total": {"amount_minor": PRICE, "currency": "CNY"},
            "needs_refund": {"amount_minor": 0, "currency": "CNY"},
        })
    );
    let legacy_success = serde_json::json!({"Refunded": {
        "refund_id": refund_id(1), "gateway_refund_id": null, "gateway_event_id": "evt_refund",
        "amount": {"amount_minor": PRICE, "currency": "CNY"}, "refunded_at": at(200),
    }});
    let legacy_failure = serde_json::json!({"RefundFailed": {
        "refund_id": refund_id(1), "gateway_refund_id": null, "gateway_event_id": "evt_fail",
        "failure_code": "insufficient_balance", "failure_message": null, "failed_at": at(200),
    }});
    assert_eq!(
        serde_json::from_value::<OrderEvent>(legacy_success).unwrap(),
        as_stored_by_1_0(success.clone())
    );
    assert_eq!(
        serde_json::from_value::<OrderEvent>(legacy_failure).unwrap(),
        as_stored_by_1_0(failure)
    );
    // A 1.0 event is written back as it was stored: no empty fields appear in its payload.
    let rewritten = serde_json::to_value(as_stored_by_1_0(success)).unwrap();
    assert!(rewritten["Refunded"].get("order_after").is_none());
}

#[test]
fn refunds_stored_as_1_0_fold_to_the_same_order() {
    let paid_history = with(vec![
        refund_requested(1, 3_000),
        refunded(1, "evt_refund_1", 3_000, partly_refunded(3_000)),
        refund_requested(2, 1_000),
        refund_failed(2, "evt_fail", 1_000),
        refund_requested(3, PRICE - 3_000),
        refunded(3, "evt_refund_3", PRICE - 3_000, fully_refunded()),
    ]);
    let mut late_history = late_on_expired_order();
    late_history.extend([
        refund_requested(1, PRICE),
        refunded(
            1,
            "evt_refund",
            PRICE,
            OrderAfterRefund {
                status: OrderStatus::Expired,
                refunded_total: cny(PRICE),
                needs_refund: cny(0),
            },
        ),
    ]);
    for history in [paid_history, late_history] {
        let as_1_0: Vec<OrderEvent> = history.iter().cloned().map(as_stored_by_1_0).collect();
        assert_ne!(as_1_0, history);
        assert_eq!(replay(&as_1_0), replay(&history));
    }
}
