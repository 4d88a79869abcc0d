//! Error codes are a public contract: this test walks every variant of every domain error and
//! checks each code is unique, dotted, and prefixed by its area.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use crate::{
    ChannelError, ChargeId, Currency, GatewayRefundId, IdError, IdProblem, Money, MoneyError,
    OrderError, OrderId, OrderStatus, PlanId, RefundId, SubscriptionError, UserId,
};

/// Naming every variant in a match without a wildcard makes a new variant a compile error
/// here until it is added to the lists below.
fn order_variant(error: &OrderError) {
    match error {
        OrderError::NotCreated
        | OrderError::AlreadyCreated
        | OrderError::NotPurchasable { .. }
        | OrderError::InvalidTransition { .. }
        | OrderError::ExpiryNotInFuture { .. }
        | OrderError::NotYetExpired { .. }
        | OrderError::ChargeMismatch { .. }
        | OrderError::NonPositiveAmount
        | OrderError::CurrencyMismatch { .. }
        | OrderError::RefundExceedsRefundable { .. }
        | OrderError::RefundAlreadyRequested { .. }
        | OrderError::UnknownRefund { .. }
        | OrderError::RefundAmountMismatch { .. }
        | OrderError::GatewayRefundMismatch { .. }
        | OrderError::TooManyRefunds { .. }
        | OrderError::TextTooLong { .. }
        | OrderError::Ledger(_) => {}
    }
}

fn subscription_variant(error: &SubscriptionError) {
    match error {
        SubscriptionError::OrderNotActivated { .. }
        | SubscriptionError::NotYetDue { .. }
        | SubscriptionError::UserMismatch { .. }
        | SubscriptionError::TimeOutOfRange => {}
    }
}

fn money_variant(error: &MoneyError) {
    match error {
        MoneyError::Negative { .. }
        | MoneyError::CurrencyMismatch { .. }
        | MoneyError::Overflow
        | MoneyError::Underflow
        | MoneyError::UnknownCurrency(_) => {}
    }
}

fn every_code() -> Vec<(&'static str, &'static str)> {
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let cny = Money::zero(Currency::Cny);
    let charge = ChargeId::parse("ch_1").unwrap();
    let refund_id = RefundId::from_uuid(Uuid::from_u128(1));
    let order_id = OrderId::from_uuid(Uuid::from_u128(2));
    let user = UserId::parse("u").unwrap();

    let order = [
        OrderError::NotCreated,
        OrderError::AlreadyCreated,
        OrderError::NotPurchasable {
            plan_id: PlanId::parse("free-monthly").unwrap(),
        },
        OrderError::InvalidTransition {
            from: OrderStatus::Paid,
            command: "Cancel",
        },
        OrderError::ExpiryNotInFuture {
            expires_at: now,
            at: now,
        },
        OrderError::NotYetExpired { expires_at: now },
        OrderError::ChargeMismatch {
            expected: charge.clone(),
            received: charge,
        },
        OrderError::NonPositiveAmount,
        OrderError::CurrencyMismatch {
            expected: Currency::Cny,
            received: Currency::Xts,
        },
        OrderError::RefundExceedsRefundable {
            requested: cny,
            refundable: cny,
        },
        OrderError::RefundAlreadyRequested { refund_id },
        OrderError::UnknownRefund { refund_id },
        OrderError::RefundAmountMismatch {
            refund_id,
            expected: cny,
            received: cny,
        },
        OrderError::GatewayRefundMismatch {
            refund_id,
            expected: GatewayRefundId::parse("re_1").unwrap(),
            received: GatewayRefundId::parse("re_2").unwrap(),
        },
        OrderError::TooManyRefunds { max: 1 },
        OrderError::TextTooLong {
            field: "reason",
            max_chars: 1,
        },
        OrderError::Ledger(MoneyError::Underflow),
    ];
    let subscription = [
        SubscriptionError::OrderNotActivated { order_id },
        SubscriptionError::NotYetDue { ends_at: now },
        SubscriptionError::UserMismatch {
            expected: user.clone(),
            received: user,
        },
        SubscriptionError::TimeOutOfRange,
    ];
    let money = [
        MoneyError::Negative { amount_minor: -1 },
        MoneyError::CurrencyMismatch {
            left: Currency::Cny,
            right: Currency::Xts,
        },
        MoneyError::Overflow,
        MoneyError::Underflow,
        MoneyError::UnknownCurrency("XYZ".to_owned()),
    ];
    let id = [IdError::Invalid {
        kind: "order_id",
        problem: IdProblem::NotUuid,
    }];
    let channel = [ChannelError::Unknown("cash".to_owned())];

    order.iter().for_each(order_variant);
    subscription.iter().for_each(subscription_variant);
    money.iter().for_each(money_variant);

    let mut codes = Vec::new();
    codes.extend(order.iter().map(|error| ("order.", error.code())));
    codes.extend(
        subscription
            .iter()
            .map(|error| ("subscription.", error.code())),
    );
    codes.extend(money.iter().map(|error| ("money.", error.code())));
    codes.extend(id.iter().map(|error| ("id.", error.code())));
    codes.extend(channel.iter().map(|error| ("channel.", error.code())));
    codes
}

#[test]
fn every_error_code_is_unique() {
    let codes = every_code();
    let unique: BTreeSet<&str> = codes.iter().map(|(_, code)| *code).collect();
    assert_eq!(unique.len(), codes.len(), "duplicated code in {codes:?}");
}

#[test]
fn every_error_code_is_dotted_lowercase_and_names_its_area() {
    for (prefix, code) in every_code() {
        assert!(
            code.starts_with(prefix),
            "{code} should start with {prefix}"
        );
        let rest = &code[prefix.len()..];
        assert!(
            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{code} is not a dotted snake_case code"
        );
    }
}
