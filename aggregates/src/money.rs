//! Money as integer minor units tagged with a currency, so amounts are exact and never mixed across currencies.

mod currency;
mod error;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use currency::Currency;
pub use error::MoneyError;

/// A non-negative amount of one currency, in minor units (fen for CNY).
///
/// Invariants: `amount_minor >= 0`, enforced by every constructor and by deserialization.
/// Arithmetic is checked and refuses to mix currencies. There is deliberately no `Default`
/// (no currency is implied) and no conversion from floating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawMoney")]
pub struct Money {
    amount_minor: i64,
    currency: Currency,
}

/// The unchecked wire form; deserialization goes through `Money::new` so a stored negative is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMoney {
    amount_minor: i64,
    currency: Currency,
}

impl TryFrom<RawMoney> for Money {
    type Error = MoneyError;

    fn try_from(raw: RawMoney) -> Result<Self, Self::Error> {
        Money::new(raw.amount_minor, raw.currency)
    }
}

impl Money {
    /// Builds an amount, refusing negatives: a debt is modelled by the event that causes it, not by a sign.
    pub fn new(amount_minor: i64, currency: Currency) -> Result<Money, MoneyError> {
        if amount_minor < 0 {
            return Err(MoneyError::Negative { amount_minor });
        }
        Ok(Money {
            amount_minor,
            currency,
        })
    }

    /// Builds an amount that cannot be negative by construction, for prices written in code.
    pub fn from_unsigned(amount_minor: u32, currency: Currency) -> Money {
        Money {
            amount_minor: i64::from(amount_minor),
            currency,
        }
    }

    pub const fn zero(currency: Currency) -> Money {
        Money {
            amount_minor: 0,
            currency,
        }
    }

    pub const fn amount_minor(&self) -> i64 {
        self.amount_minor
    }

    pub const fn currency(&self) -> Currency {
        self.currency
    }

    pub const fn is_zero(&self) -> bool {
        self.amount_minor == 0
    }

    /// Adds two amounts of the same currency; a mismatch or an overflow is an error, never a wrap.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount_minor = self
            .amount_minor
            .checked_add(other.amount_minor)
            .ok_or(MoneyError::Overflow)?;
        Money::new(amount_minor, self.currency)
    }

    /// Subtracts `other`; a result below zero is `Underflow` because amounts are never negative.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount_minor = self
            .amount_minor
            .checked_sub(other.amount_minor)
            .ok_or(MoneyError::Overflow)?;
        if amount_minor < 0 {
            return Err(MoneyError::Underflow);
        }
        Money::new(amount_minor, self.currency)
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }
}

impl fmt::Display for Money {
    /// Renders "99.00 CNY" with integer division only, so no rounding can creep in.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exponent = self.currency.minor_unit_exponent();
        let scale = 10_i64.pow(exponent);
        let whole = self.amount_minor / scale;
        let fraction = self.amount_minor % scale;
        if exponent == 0 {
            return write!(formatter, "{whole} {}", self.currency);
        }
        let width = usize::try_from(exponent).unwrap_or(0);
        write!(
            formatter,
            "{whole}.{fraction:0width$} {}",
            self.currency,
            width = width
        )
    }
}
