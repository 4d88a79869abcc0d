//! Money arriving: exact payments, wrong amounts, redeliveries, late and duplicate payments.

use super::fixtures::*;
use crate::text::MAX_GATEWAY_TEXT_CHARS;
use crate::{Currency, Money, OrderCommand, OrderError, OrderEvent, OrderStatus};

fn pending_order() -> Vec<OrderEvent> {
    vec![created(), charge_requested()]
}

fn mismatch(received: Money) -> OrderEvent {
    OrderEvent::PaymentAmountMismatch {
        charge_id: charge("ch_first"),
        gateway_event_id: event_id("evt_paid"),
        expected: cny(PRICE),
        received,
        received_at: at(6),
    }
}

#[test]
fn confirming_the_exact_amount_marks_the_order_paid() {
    given(pending_order())
        .when(confirm("ch_first", "evt_paid", cny(PRICE)))
        .then_expect_events(vec![payment_confirmed()]);
    let order = replay(&paid_order());
    assert_eq!(order.status(), Some(OrderStatus::Paid));
    assert_eq!(order.paid_amount(), Some(cny(PRICE)));
    assert_eq!(order.refundable(), Some(cny(PRICE)));
    assert_eq!(order.transaction_no(), Some("2026010122001"));
}

#[test]
fn a_confirmation_for_a_different_amount_is_kept_as_a_mismatch_and_flagged() {
    given(pending_order())
        .when(confirm("ch_first", "evt_paid", cny(1)))
        .then_expect_events(vec![mismatch(cny(1))]);
    let mut events = pending_order();
    events.push(mismatch(cny(1)));
    let order = replay(&events);
    assert_eq!(order.status(), Some(OrderStatus::Pending));
    assert_eq!(order.paid_amount(), None);
    assert!(order.needs_review());
}

#[test]
fn a_confirmation_in_another_currency_is_a_mismatch() {
    let received = Money::new(PRICE, Currency::Xts).unwrap();
    given(pending_order())
        .when(confirm("ch_first", "evt_paid", received))
        .then_expect_events(vec![mismatch(received)]);
}

#[test]
fn a_redelivered_confirmation_records_nothing() {
    given(paid_order())
        .when(confirm("ch_first", "evt_paid", cny(PRICE)))
        .then_expect_events(vec![]);
}

#[test]
fn the_paid_charge_confirmed_again_under_a_new_event_id_records_nothing() {
    given(paid_order())
        .when(confirm("ch_first", "evt_again", cny(PRICE)))
        .then_expect_events(vec![]);
}

#[test]
fn the_paid_charge_confirmed_again_after_a_full_refund_records_nothing() {
    let mut events = paid_order();
    events.extend([
        refund_requested(1, PRICE),
        refunded(1, "evt_refund", PRICE, fully_refunded()),
    ]);
    given(events)
        .when(confirm("ch_first", "evt_again", cny(PRICE)))
        .then_expect_events(vec![]);
}

#[test]
fn a_redelivered_mismatch_records_nothing() {
    let mut events = pending_order();
    events.push(mismatch(cny(1)));
    given(events)
        .when(confirm("ch_first", "evt_other", cny(1)))
        .then_expect_events(vec![]);
}

#[test]
fn a_confirmation_for_another_charge_while_pending_is_rejected() {
    given(pending_order())
        .when(confirm("ch_stranger", "evt_paid", cny(PRICE)))
        .then_expect_error(OrderError::ChargeMismatch {
            expected: charge("ch_first"),
            received: charge("ch_stranger"),
        });
}

#[test]
fn a_confirmation_before_any_charge_is_rejected() {
    given(vec![created()])
        .when(confirm("ch_first", "evt_paid", cny(PRICE)))
        .then_expect_error(OrderError::InvalidTransition {
            from: OrderStatus::Created,
            command: "ConfirmPayment",
        });
}

#[test]
fn another_orders_charge_naming_a_paid_order_is_a_conflict_not_money() {
    given(paid_order())
        .when(confirm("ch_second", "evt_second", cny(PRICE)))
        .then_expect_error(OrderError::ChargeMismatch {
            expected: charge("ch_first"),
            received: charge("ch_second"),
        });
}

#[test]
fn a_duplicate_recorded_by_an_older_version_still_replays_and_needs_refund() {
    let mut events = paid_order();
    events.push(OrderEvent::DuplicatePaymentReceived {
        charge_id: charge("ch_second"),
        gateway_event_id: event_id("evt_second"),
        amount: cny(PRICE),
        received_at: at(6),
    });
    let order = replay(&events);
    assert_eq!(order.status(), Some(OrderStatus::Paid));
    assert_eq!(order.paid_amount(), Some(cny(PRICE)));
    assert_eq!(order.needs_refund(), Some(cny(PRICE)));
}

#[test]
fn a_duplicate_payment_is_recorded_once() {
    let mut events = paid_order();
    events.push(OrderEvent::DuplicatePaymentReceived {
        charge_id: charge("ch_second"),
        gateway_event_id: event_id("evt_second"),
        amount: cny(PRICE),
        received_at: at(6),
    });
    given(events)
        .when(confirm("ch_second", "evt_second_retry", cny(PRICE)))
        .then_expect_events(vec![]);
}

fn closed(status: OrderStatus) -> OrderEvent {
    match status {
        OrderStatus::Expired => OrderEvent::OrderExpired { expired_at: at(15) },
        OrderStatus::Cancelled => OrderEvent::OrderCancelled {
            reason: "changed my mind".to_owned(),
            cancelled_at: at(3),
        },
        OrderStatus::Failed => OrderEvent::PaymentFailed {
            charge_id: charge("ch_first"),
            gateway_event_id: event_id("evt_failed"),
            failure_code: None,
            failure_message: None,
            failed_at: at(3),
        },
        other => panic!("{other} is not a closed status"),
    }
}

fn late(status: OrderStatus) -> OrderEvent {
    OrderEvent::LatePaymentReceived {
        charge_id: charge("ch_first"),
        gateway_event_id: event_id("evt_paid"),
        amount: cny(PRICE),
        status_at_arrival: status,
        received_at: at(6),
    }
}

#[test]
fn money_after_the_order_closed_is_a_late_payment_that_needs_refund() {
    for status in [
        OrderStatus::Expired,
        OrderStatus::Cancelled,
        OrderStatus::Failed,
    ] {
        let mut events = pending_order();
        events.push(closed(status));
        given(events.clone())
            .when(confirm("ch_first", "evt_paid", cny(PRICE)))
            .then_expect_events(vec![late(status)]);
        events.push(late(status));
        let order = replay(&events);
        assert_eq!(order.status(), Some(status));
        assert_eq!(order.paid_amount(), None);
        assert_eq!(order.needs_refund(), Some(cny(PRICE)));
    }
}

#[test]
fn a_late_payment_is_recorded_once() {
    let mut events = pending_order();
    events.extend([closed(OrderStatus::Expired), late(OrderStatus::Expired)]);
    given(events.clone())
        .when(confirm("ch_first", "evt_paid", cny(PRICE)))
        .then_expect_events(vec![]);
    given(events)
        .when(confirm("ch_first", "evt_retry", cny(PRICE)))
        .then_expect_events(vec![]);
}

#[test]
fn another_orders_charge_naming_a_closed_order_is_a_conflict_not_late_money() {
    for status in [
        OrderStatus::Expired,
        OrderStatus::Cancelled,
        OrderStatus::Failed,
    ] {
        let mut events = pending_order();
        events.push(closed(status));
        given(events)
            .when(confirm("ch_paid_elsewhere", "evt_reused", cny(PRICE)))
            .then_expect_error(OrderError::ChargeMismatch {
                expected: charge("ch_first"),
                received: charge("ch_paid_elsewhere"),
            });
    }
}

#[test]
fn an_order_closed_before_its_charge_was_recorded_takes_late_money_from_that_charge() {
    // The process stopped between the gateway creating the charge and recording it.
    let events = vec![
        created(),
        OrderEvent::OrderCancelled {
            reason: "no charge was recorded".to_owned(),
            cancelled_at: at(3),
        },
    ];
    given(events)
        .when(confirm("ch_unrecorded", "evt_paid", cny(PRICE)))
        .then_expect_events(vec![OrderEvent::LatePaymentReceived {
            charge_id: charge("ch_unrecorded"),
            gateway_event_id: event_id("evt_paid"),
            amount: cny(PRICE),
            status_at_arrival: OrderStatus::Cancelled,
            received_at: at(6),
        }]);
}

#[test]
fn late_payments_from_different_charges_add_up() {
    let mut events = pending_order();
    events.extend([closed(OrderStatus::Expired), late(OrderStatus::Expired)]);
    events.push(OrderEvent::LatePaymentReceived {
        charge_id: charge("ch_second"),
        gateway_event_id: event_id("evt_second"),
        amount: cny(100),
        status_at_arrival: OrderStatus::Expired,
        received_at: at(20),
    });
    assert_eq!(replay(&events).needs_refund(), Some(cny(PRICE + 100)));
}

fn fail_payment(charge_id: &str, event: &str) -> OrderCommand {
    OrderCommand::FailPayment {
        charge_id: charge(charge_id),
        gateway_event_id: event_id(event),
        failure_code: Some("USER_CANCEL".to_owned()),
        failure_message: Some("buyer closed the page".to_owned()),
        at: at(3),
    }
}

#[test]
fn a_gateway_failure_fails_the_pending_order() {
    given(pending_order())
        .when(fail_payment("ch_first", "evt_failed"))
        .then_expect_events(vec![OrderEvent::PaymentFailed {
            charge_id: charge("ch_first"),
            gateway_event_id: event_id("evt_failed"),
            failure_code: Some("USER_CANCEL".to_owned()),
            failure_message: Some("buyer closed the page".to_owned()),
            failed_at: at(3),
        }]);
}

#[test]
fn a_failure_for_another_charge_is_rejected() {
    given(pending_order())
        .when(fail_payment("ch_stranger", "evt_failed"))
        .then_expect_error(OrderError::ChargeMismatch {
            expected: charge("ch_first"),
            received: charge("ch_stranger"),
        });
}

#[test]
fn a_failure_notice_after_the_order_closed_records_nothing() {
    let mut events = pending_order();
    events.push(closed(OrderStatus::Expired));
    given(events)
        .when(fail_payment("ch_first", "evt_failed"))
        .then_expect_events(vec![]);
}

#[test]
fn a_failure_notice_on_a_paid_order_is_rejected() {
    given(paid_order())
        .when(fail_payment("ch_first", "evt_failed"))
        .then_expect_error(OrderError::InvalidTransition {
            from: OrderStatus::Paid,
            command: "FailPayment",
        });
}

#[test]
fn an_oversized_gateway_message_is_clipped_not_refused() {
    let command = OrderCommand::FailPayment {
        charge_id: charge("ch_first"),
        gateway_event_id: None,
        failure_code: None,
        failure_message: Some("m".repeat(MAX_GATEWAY_TEXT_CHARS * 2)),
        at: at(3),
    };
    let events = replay(&pending_order()).decide(command).unwrap();
    match events.as_slice() {
        [OrderEvent::PaymentFailed {
            failure_message: Some(message),
            ..
        }] => assert_eq!(message.chars().count(), MAX_GATEWAY_TEXT_CHARS),
        other => panic!("expected one PaymentFailed, got {other:?}"),
    }
}

#[test]
fn any_command_repeating_a_seen_gateway_event_records_nothing() {
    let mut events = paid_order();
    events.push(refund_requested(1, 100));
    let order = replay(&events);
    assert!(order.has_processed(&event_id("evt_paid").unwrap()));
    given(events)
        .when(confirm_refund(1, "evt_paid"))
        .then_expect_events(vec![]);
}
