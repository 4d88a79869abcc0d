//! Examples and properties for `Money`: exact, currency-aware, never negative, never wrapping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::str::FromStr;

use proptest::prelude::*;

use super::*;

fn cny(amount_minor: i64) -> Money {
    Money::new(amount_minor, Currency::Cny).unwrap()
}

#[test]
fn negative_amounts_are_refused() {
    assert_eq!(
        Money::new(-1, Currency::Cny),
        Err(MoneyError::Negative { amount_minor: -1 })
    );
}

#[test]
fn display_uses_major_units_with_two_decimals() {
    assert_eq!(cny(9900).to_string(), "99.00 CNY");
    assert_eq!(cny(5).to_string(), "0.05 CNY");
    assert_eq!(cny(0).to_string(), "0.00 CNY");
    assert_eq!(cny(123_456).to_string(), "1234.56 CNY");
}

#[test]
fn subtracting_more_than_held_is_an_underflow() {
    assert_eq!(cny(1).checked_sub(cny(2)), Err(MoneyError::Underflow));
}

#[test]
fn zero_is_zero() {
    assert!(Money::zero(Currency::Cny).is_zero());
    assert!(!cny(1).is_zero());
}

#[test]
fn unsigned_prices_convert_exactly() {
    assert_eq!(
        Money::from_unsigned(u32::MAX, Currency::Cny).amount_minor(),
        4_294_967_295
    );
}

#[test]
fn currency_parses_in_any_letter_case() {
    assert_eq!(Currency::from_str("CNY"), Ok(Currency::Cny));
    assert_eq!(Currency::from_str("cny"), Ok(Currency::Cny));
    assert_eq!(
        Currency::from_str("usd"),
        Err(MoneyError::UnknownCurrency("usd".to_owned()))
    );
    assert_eq!(Currency::Cny.to_string(), "CNY");
    assert_eq!(Currency::Cny.minor_unit_exponent(), 2);
}

#[test]
fn money_serializes_as_integer_minor_units() {
    let json = serde_json::to_value(cny(9900)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({ "amount_minor": 9900, "currency": "CNY" })
    );
}

#[test]
fn deserializing_a_negative_amount_fails() {
    let result: Result<Money, _> =
        serde_json::from_str(r#"{"amount_minor": -5, "currency": "CNY"}"#);
    assert!(result.is_err());
}

#[test]
fn deserializing_a_fractional_amount_fails() {
    let result: Result<Money, _> =
        serde_json::from_str(r#"{"amount_minor": 99.5, "currency": "CNY"}"#);
    assert!(result.is_err());
}

fn any_currency() -> impl Strategy<Value = Currency> {
    proptest::sample::select(Currency::all())
}

fn any_money() -> impl Strategy<Value = Money> {
    (0..=i64::MAX, any_currency())
        .prop_map(|(amount, currency)| Money::new(amount, currency).unwrap())
}

proptest! {
    #[test]
    fn adding_then_subtracting_returns_the_original(
        left in 0..=i64::MAX / 2,
        right in 0..=i64::MAX / 2,
        currency in any_currency(),
    ) {
        let left = Money::new(left, currency).unwrap();
        let right = Money::new(right, currency).unwrap();
        let sum = left.checked_add(right).unwrap();
        prop_assert_eq!(sum.checked_sub(right), Ok(left));
        prop_assert_eq!(sum.checked_sub(left), Ok(right));
    }

    #[test]
    fn different_currencies_never_combine(left in any_money(), right in any_money()) {
        prop_assume!(left.currency() != right.currency());
        let mismatch = MoneyError::CurrencyMismatch { left: left.currency(), right: right.currency() };
        prop_assert_eq!(left.checked_add(right), Err(mismatch.clone()));
        prop_assert_eq!(left.checked_sub(right), Err(mismatch));
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap(left in 1..=i64::MAX, right in 1..=i64::MAX) {
        let result = cny(left).checked_add(cny(right));
        match left.checked_add(right) {
            Some(expected) => prop_assert_eq!(result, Ok(cny(expected))),
            None => prop_assert_eq!(result, Err(MoneyError::Overflow)),
        }
    }

    #[test]
    fn results_are_never_negative(left in any_money(), right in any_money()) {
        for result in [left.checked_add(right), left.checked_sub(right)].into_iter().flatten() {
            prop_assert!(result.amount_minor() >= 0);
        }
    }

    #[test]
    fn serde_round_trips(money in any_money()) {
        let json = serde_json::to_string(&money).unwrap();
        let back: Money = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, money);
    }

    #[test]
    fn display_round_trips_through_integer_parts(amount in 0..=i64::MAX) {
        let text = cny(amount).to_string();
        let number = text.trim_end_matches(" CNY").replace('.', "");
        prop_assert_eq!(number.parse::<i64>().unwrap(), amount);
    }
}
