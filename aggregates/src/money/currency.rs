//! The closed set of currencies we price in, each knowing how many minor units make a major one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::MoneyError;

/// An ISO 4217 currency we accept. Adding one is a deliberate change: every price and
/// gateway mapping must then be reviewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Currency {
    #[serde(rename = "CNY")]
    Cny,
    /// ISO 4217 "testing" code, compiled only into this crate's own tests so that
    /// currency-mismatch rules can be exercised while production has a single currency.
    #[cfg(test)]
    #[serde(rename = "XTS")]
    Xts,
}

impl Currency {
    /// Every supported currency, for exhaustive tests and configuration checks.
    pub fn all() -> &'static [Currency] {
        &[
            Currency::Cny,
            #[cfg(test)]
            Currency::Xts,
        ]
    }

    pub const fn code(&self) -> &'static str {
        match self {
            Currency::Cny => "CNY",
            #[cfg(test)]
            Currency::Xts => "XTS",
        }
    }

    /// Digits after the decimal point: 2 for CNY (1 yuan = 100 fen).
    pub const fn minor_unit_exponent(&self) -> u32 {
        match self {
            Currency::Cny => 2,
            #[cfg(test)]
            Currency::Xts => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    /// Accepts the ISO code in any letter case ("CNY", "cny").
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Currency::all()
            .iter()
            .copied()
            .find(|currency| currency.code().eq_ignore_ascii_case(text))
            .ok_or_else(|| MoneyError::UnknownCurrency(text.to_owned()))
    }
}
