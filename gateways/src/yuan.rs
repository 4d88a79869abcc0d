//! Yuan amounts as Alipay writes them ("0.10", "88.88") converted to and from fen exactly,
//! by parsing digits, never through floating point: 0.1 + 0.2 is not 0.3 in binary, and a
//! fen lost or gained on a settlement is a ledger that does not balance.

/// Why a yuan string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("the amount is empty")]
    Empty,
    #[error("the amount {0:?} is not a plain decimal number of yuan")]
    NotDecimal(String),
    #[error("the amount {0:?} has more than two decimals")]
    TooPrecise(String),
    #[error("the amount {0:?} is too large")]
    Overflow(String),
    #[error("a negative amount cannot be written in yuan here: {0} fen")]
    Negative(i64),
}

impl AmountError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "amount.empty",
            Self::NotDecimal(_) => "amount.not_decimal",
            Self::TooPrecise(_) => "amount.too_precise",
            Self::Overflow(_) => "amount.overflow",
            Self::Negative(_) => "amount.negative",
        }
    }
}

/// The longest yuan text we read: far beyond any real amount, short enough to refuse a
/// hostile megabyte of digits before scanning it.
const TEXT_CHARS_MAX: usize = 24;

/// Parses "12", "12.3" or "12.34" yuan into fen. Refuses signs, exponents, spaces,
/// separators, a bare or trailing point, more than two decimals and overflow.
pub fn fen_from_yuan(text: &str) -> Result<i64, AmountError> {
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    let not_decimal = || AmountError::NotDecimal(text.chars().take(TEXT_CHARS_MAX).collect());
    if text.len() > TEXT_CHARS_MAX {
        return Err(AmountError::Overflow(
            text.chars().take(TEXT_CHARS_MAX).collect(),
        ));
    }
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    let digits_only = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) {
        return Err(not_decimal());
    }
    if text.ends_with('.') {
        return Err(not_decimal());
    }
    if fraction.len() > 2 {
        return Err(AmountError::TooPrecise(text.to_owned()));
    }
    let overflow = || AmountError::Overflow(text.to_owned());
    let mut fen: i64 = 0;
    for digit in whole.bytes() {
        fen = fen
            .checked_mul(10)
            .and_then(|value| value.checked_add(i64::from(digit - b'0')))
            .ok_or_else(overflow)?;
    }
    let mut fraction_digits = fraction.bytes();
    for _ in 0..2 {
        let digit = fraction_digits.next().map_or(0, |digit| digit - b'0');
        fen = fen
            .checked_mul(10)
            .and_then(|value| value.checked_add(i64::from(digit)))
            .ok_or_else(overflow)?;
    }
    Ok(fen)
}

/// Writes fen as yuan with exactly two decimals ("0.10"), as Alipay expects them.
pub fn yuan_from_fen(fen: i64) -> Result<String, AmountError> {
    if fen < 0 {
        return Err(AmountError::Negative(fen));
    }
    Ok(format!("{}.{:02}", fen / 100, fen % 100))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn published_amounts_convert_exactly() {
        assert_eq!(fen_from_yuan("0.10"), Ok(10));
        assert_eq!(fen_from_yuan("0.01"), Ok(1));
        assert_eq!(fen_from_yuan("88.88"), Ok(8888));
        assert_eq!(fen_from_yuan("100"), Ok(10000));
        assert_eq!(fen_from_yuan("1.5"), Ok(150));
        assert_eq!(fen_from_yuan("0"), Ok(0));
        assert_eq!(fen_from_yuan("92233720368547758.07"), Ok(i64::MAX));
        assert_eq!(yuan_from_fen(10).unwrap(), "0.10");
        assert_eq!(yuan_from_fen(0).unwrap(), "0.00");
        assert_eq!(yuan_from_fen(123_456).unwrap(), "1234.56");
    }

    #[test]
    fn anything_but_plain_yuan_is_refused() {
        for text in [
            "-1.00", "+1.00", "1e2", "1E2", " 1.00", "1.00 ", "1,000.00", ".5", "5.", "0x10",
            "1..0", "1.0.0", "NaN", "inf", "１.00", "1_000",
        ] {
            assert!(
                matches!(fen_from_yuan(text), Err(AmountError::NotDecimal(_))),
                "{text}"
            );
        }
        assert_eq!(fen_from_yuan(""), Err(AmountError::Empty));
        assert_eq!(
            fen_from_yuan("0.001"),
            Err(AmountError::TooPrecise("0.001".to_owned()))
        );
        assert!(matches!(
            fen_from_yuan("92233720368547758.08"),
            Err(AmountError::Overflow(_))
        ));
        assert!(matches!(
            fen_from_yuan(&"9".repeat(10_000)),
            Err(AmountError::Overflow(_))
        ));
        assert_eq!(yuan_from_fen(-1), Err(AmountError::Negative(-1)));
    }

    proptest! {
        #[test]
        fn fen_round_trip_through_yuan(fen in 0..=i64::MAX) {
            let text = yuan_from_fen(fen).unwrap();
            prop_assert_eq!(fen_from_yuan(&text), Ok(fen));
        }

        #[test]
        fn one_decimal_means_tens_of_fen(whole in 0_i64..1_000_000, tenth in 0_i64..10) {
            prop_assert_eq!(fen_from_yuan(&format!("{whole}.{tenth}")), Ok(whole * 100 + tenth * 10));
        }
    }
}
