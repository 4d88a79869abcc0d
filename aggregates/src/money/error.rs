//! Why a money value or a money operation was refused.

use super::Currency;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount {amount_minor} is negative; amounts are never below zero")]
    Negative { amount_minor: i64 },
    #[error("cannot combine {left} with {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
    #[error("amount is too large to represent")]
    Overflow,
    #[error("result would be below zero")]
    Underflow,
    #[error("unknown currency {0:?}")]
    UnknownCurrency(String),
}

impl MoneyError {
    /// A stable machine-readable code; clients branch on it, so never change an existing one.
    pub fn code(&self) -> &'static str {
        match self {
            MoneyError::Negative { .. } => "money.negative",
            MoneyError::CurrencyMismatch { .. } => "money.currency_mismatch",
            MoneyError::Overflow => "money.overflow",
            MoneyError::Underflow => "money.underflow",
            MoneyError::UnknownCurrency(_) => "money.unknown_currency",
        }
    }
}
