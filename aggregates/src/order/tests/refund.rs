//! Giving money back: reservations, limits, settlement and repeated gateway notices.

use super::fixtures::*;
use crate::order::{RefundStatus, ReportedRefund, MAX_REFUNDS_PER_ORDER};
use crate::{Currency, Money, OrderAfterRefund, OrderCommand, OrderError, OrderEvent, OrderStatus};

fn with(extra: Vec<OrderEvent>) -> Vec<OrderEvent> {
    let mut events = paid_order();
    events.extend(extra);
    events
}

#[test]
fn a_refund_request_on_a_paid_order_reserves_its_amount() {
    given(paid_order())
        .when(request_refund(1, 3_000))
        .then_expect_events(vec![refund_requested(1, 3_000)]);
    let order = replay(&with(vec![refund_requested(1, 3_000)]));
    assert_eq!(order.refund_reserved(), Some(cny(3_000)));
    assert_eq!(order.refunded_amount(), Some(cny(0)));
    assert_eq!(order.refundable(), Some(cny(PRICE - 3_000)));
    assert_eq!(
        order.refund(&refund_id(1)).map(|record| record.status),
        Some(RefundStatus::Pending)
    );
}

#[test]
fn a_refund_on_an_unpaid_order_is_rejected() {
    given(vec![created(), charge_requested()])
        .when(request_refund(1, 100))
        .then_expect_error(OrderError::InvalidTransition {
            from: OrderStatus::Pending,
            command: "RequestRefund",
        });
}

#[test]
fn a_refund_on_a_fully_refunded_order_is_rejected() {
    given(with(vec![
        refund_requested(1, PRICE),
        refunded(1, "evt_refund", PRICE, fully_refunded()),
    ]))
    .when(request_refund(2, 1))
    .then_expect_error(OrderError::InvalidTransition {
        from: OrderStatus::Refunded,
        command: "RequestRefund",
    });
}

#[test]
fn a_zero_refund_is_rejected() {
    given(paid_order())
        .when(request_refund(1, 0))
        .then_expect_error(OrderError::NonPositiveAmount);
}

#[test]
fn a_refund_in_another_currency_is_rejected() {
    let command = OrderCommand::RequestRefund {
        refund_id: refund_id(1),
        amount: Money::new(100, Currency::Xts).unwrap(),
        reason: "customer asked".to_owned(),
        at: at(100),
    };
    given(paid_order())
        .when(command)
        .then_expect_error(OrderError::CurrencyMismatch {
            expected: Currency::Cny,
            received: Currency::Xts,
        });
}

#[test]
fn a_refund_larger_than_the_payment_is_rejected() {
    given(paid_order())
        .when(request_refund(1, PRICE + 1))
        .then_expect_error(OrderError::RefundExceedsRefundable {
            requested: cny(PRICE + 1),
            refundable: cny(PRICE),
        });
}

#[test]
fn pending_refunds_count_against_what_is_refundable() {
    given(with(vec![refund_requested(1, 9_000)]))
        .when(request_refund(2, 1_000))
        .then_expect_error(OrderError::RefundExceedsRefundable {
            requested: cny(1_000),
            refundable: cny(900),
        });
}

#[test]
fn succeeded_refunds_count_against_what_is_refundable() {
    given(with(vec![
        refund_requested(1, 9_000),
        refunded(1, "evt_refund", 9_000, partly_refunded(9_000)),
    ]))
    .when(request_refund(2, 901))
    .then_expect_error(OrderError::RefundExceedsRefundable {
        requested: cny(901),
        refundable: cny(900),
    });
}

#[test]
fn reusing_a_refund_id_is_rejected() {
    given(with(vec![refund_requested(1, 100)]))
        .when(request_refund(1, 100))
        .then_expect_error(OrderError::RefundAlreadyRequested {
            refund_id: refund_id(1),
        });
}

#[test]
fn a_failed_refund_releases_its_reservation() {
    given(with(vec![
        refund_requested(1, PRICE),
        refund_failed(1, "evt_fail", PRICE),
    ]))
    .when(request_refund(2, PRICE))
    .then_expect_events(vec![refund_requested(2, PRICE)]);
}

#[test]
fn confirming_part_of_the_payment_leaves_the_order_partially_refunded() {
    given(with(vec![refund_requested(1, 3_000)]))
        .when(confirm_refund(1, "evt_refund"))
        .then_expect_events(vec![refunded(
            1,
            "evt_refund",
            3_000,
            partly_refunded(3_000),
        )]);
    let order = replay(&with(vec![
        refund_requested(1, 3_000),
        refunded(1, "evt_refund", 3_000, partly_refunded(3_000)),
    ]));
    assert_eq!(order.status(), Some(OrderStatus::PartiallyRefunded));
    assert_eq!(order.refunded_amount(), Some(cny(3_000)));
    assert_eq!(order.refundable(), Some(cny(PRICE - 3_000)));
}

#[test]
fn confirming_the_whole_payment_leaves_the_order_refunded() {
    given(with(vec![refund_requested(1, PRICE)]))
        .when(confirm_refund(1, "evt_refund"))
        .then_expect_events(vec![refunded(1, "evt_refund", PRICE, fully_refunded())]);
    let order = replay(&with(vec![
        refund_requested(1, PRICE),
        refunded(1, "evt_refund", PRICE, fully_refunded()),
    ]));
    assert_eq!(order.status(), Some(OrderStatus::Refunded));
    assert_eq!(order.refundable(), Some(cny(0)));
}

#[test]
fn partial_refunds_adding_up_to_the_payment_leave_the_order_refunded() {
    let order = replay(&with(vec![
        refund_requested(1, 4_000),
        refunded(1, "evt_refund_1", 4_000, partly_refunded(4_000)),
        refund_requested(2, PRICE - 4_000),
        refunded(2, "evt_refund_2", PRICE - 4_000, fully_refunded()),
    ]));
    assert_eq!(order.status(), Some(OrderStatus::Refunded));
    assert_eq!(order.refunded_amount(), order.paid_amount());
}

#[test]
fn a_refund_can_be_requested_on_a_partially_refunded_order() {
    given(with(vec![
        refund_requested(1, 4_000),
        refunded(1, "evt_refund", 4_000, partly_refunded(4_000)),
    ]))
    .when(request_refund(2, PRICE - 4_000))
    .then_expect_events(vec![refund_requested(2, PRICE - 4_000)]);
}

#[test]
fn confirming_an_unknown_refund_is_rejected() {
    given(paid_order())
        .when(confirm_refund(9, "evt_refund"))
        .then_expect_error(OrderError::UnknownRefund {
            refund_id: refund_id(9),
        });
}

#[test]
fn failing_an_unknown_refund_is_rejected() {
    given(paid_order())
        .when(fail_refund(9, "evt_fail"))
        .then_expect_error(OrderError::UnknownRefund {
            refund_id: refund_id(9),
        });
}

#[test]
fn a_settled_refund_notified_again_records_nothing() {
    let succeeded = with(vec![
        refund_requested(1, 100),
        refunded(1, "evt_refund", 100, partly_refunded(100)),
    ]);
    given(succeeded.clone())
        .when(confirm_refund(1, "evt_refund_again"))
        .then_expect_events(vec![]);
    given(succeeded)
        .when(fail_refund(1, "evt_fail"))
        .then_expect_events(vec![]);
    let failed = with(vec![
        refund_requested(1, 100),
        refund_failed(1, "evt_fail", 100),
    ]);
    given(failed.clone())
        .when(confirm_refund(1, "evt_refund"))
        .then_expect_events(vec![]);
    given(failed)
        .when(fail_refund(1, "evt_fail_again"))
        .then_expect_events(vec![]);
}

#[test]
fn a_settled_refund_on_a_fully_refunded_order_notified_again_records_nothing() {
    given(with(vec![
        refund_requested(1, PRICE),
        refunded(1, "evt_refund", PRICE, fully_refunded()),
    ]))
    .when(confirm_refund(1, "evt_refund_again"))
    .then_expect_events(vec![]);
}

#[test]
fn a_failed_refund_keeps_the_gateway_reason() {
    given(with(vec![refund_requested(1, 100)]))
        .when(fail_refund(1, "evt_fail"))
        .then_expect_events(vec![refund_failed(1, "evt_fail", 100)]);
    let order = replay(&with(vec![
        refund_requested(1, 100),
        refund_failed(1, "evt_fail", 100),
    ]));
    let record = order.refund(&refund_id(1)).unwrap();
    assert_eq!(record.status, RefundStatus::Failed);
    assert_eq!(record.failure_code.as_deref(), Some("insufficient_balance"));
    assert_eq!(order.refund_reserved(), Some(cny(0)));
    assert_eq!(order.status(), Some(OrderStatus::Paid));
}

#[test]
fn refund_requests_are_bounded_per_order() {
    let mut extra = Vec::new();
    for n in 0..u128::try_from(MAX_REFUNDS_PER_ORDER).unwrap() {
        extra.push(refund_requested(n, 1));
        extra.push(refund_failed(n, &format!("evt_fail_{n}"), 1));
    }
    given(with(extra))
        .when(request_refund(1_000, 1))
        .then_expect_error(OrderError::TooManyRefunds {
            max: MAX_REFUNDS_PER_ORDER,
        });
}

#[test]
fn refund_notices_on_an_unpaid_order_are_rejected() {
    given(vec![
        created(),
        OrderEvent::OrderExpired { expired_at: at(1) },
    ])
    .when(confirm_refund(1, "evt_refund"))
    .then_expect_error(OrderError::UnknownRefund {
        refund_id: refund_id(1),
    });
    given(vec![
        created(),
        OrderEvent::OrderExpired { expired_at: at(1) },
    ])
    .when(request_refund(1, 100))
    .then_expect_error(OrderError::InvalidTransition {
        from: OrderStatus::Expired,
        command: "RequestRefund",
    });
}

#[test]
fn late_money_on_a_closed_order_can_be_given_back_and_the_order_stays_closed() {
    let late = OrderEvent::LatePaymentReceived {
        charge_id: charge("ch_first"),
        gateway_event_id: event_id("evt_late"),
        amount: cny(PRICE),
        status_at_arrival: OrderStatus::Expired,
        received_at: at(20),
    };
    let mut events = vec![created(), charge_requested()];
    events.extend([OrderEvent::OrderExpired { expired_at: at(15) }, late]);
    given(events.clone())
        .when(request_refund(1, PRICE + 1))
        .then_expect_error(OrderError::RefundExceedsRefundable {
            requested: cny(PRICE + 1),
            refundable: cny(PRICE),
        });
    given(events.clone())
        .when(request_refund(1, PRICE))
        .then_expect_events(vec![refund_requested(1, PRICE)]);
    events.push(refund_requested(1, PRICE));
    let given_back = OrderAfterRefund {
        status: OrderStatus::Expired,
        refunded_total: cny(PRICE),
        needs_refund: cny(0),
    };
    given(events.clone())
        .when(confirm_refund(1, "evt_refunded"))
        .then_expect_events(vec![refunded(1, "evt_refunded", PRICE, given_back)]);
    events.push(refunded(1, "evt_refunded", PRICE, given_back));
    let order = replay(&events);
    assert_eq!(order.status(), Some(OrderStatus::Expired));
    assert_eq!(order.needs_refund(), None, "nothing owed any more");
    given(events).when(request_refund(2, 1)).then_expect_error(
        OrderError::RefundExceedsRefundable {
            requested: cny(1),
            refundable: cny(0),
        },
    );
}

fn reported(command: OrderCommand, charge_id: &str, amount_minor: i64) -> OrderCommand {
    match command {
        OrderCommand::ConfirmRefund {
            refund_id,
            gateway_refund_id,
            gateway_event_id,
            at,
            ..
        } => OrderCommand::ConfirmRefund {
            refund_id,
            gateway_refund_id,
            gateway_event_id,
            reported: Some(ReportedRefund {
                charge_id: charge(charge_id),
                amount: cny(amount_minor),
            }),
            at,
        },
        other => other,
    }
}

#[test]
fn a_refund_is_confirmed_only_as_it_was_requested() {
    let mut events = paid_order();
    events.push(refund_requested(1, 100));
    given(events.clone())
        .when(reported(confirm_refund(1, "evt_refunded"), "ch_first", 100))
        .then_expect_events(vec![refunded(1, "evt_refunded", 100, partly_refunded(100))]);
    given(events.clone())
        .when(reported(
            confirm_refund(1, "evt_refunded"),
            "ch_first",
            999_999,
        ))
        .then_expect_error(OrderError::RefundAmountMismatch {
            refund_id: refund_id(1),
            expected: cny(100),
            received: cny(999_999),
        });
    given(events)
        .when(reported(confirm_refund(1, "evt_refunded"), "ch_other", 100))
        .then_expect_error(OrderError::ChargeMismatch {
            expected: charge("ch_first"),
            received: charge("ch_other"),
        });
}
