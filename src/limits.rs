//! Bounds on what one order may cost, so a misconfigured catalog or a tampered request can
//! never ask a customer for an absurd amount.

use crate::variable::{positive_number, InvalidVariable};

/// Default smallest order: one fen.
pub const ORDER_MIN_MINOR_DEFAULT: i64 = 1;
/// Default largest order: 100,000.00 CNY.
pub const ORDER_MAX_MINOR_DEFAULT: i64 = 10_000_000;

/// Inclusive bounds, in minor units, on an order's amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderLimits {
    pub min_minor: i64,
    pub max_minor: i64,
}

impl Default for OrderLimits {
    fn default() -> Self {
        Self {
            min_minor: ORDER_MIN_MINOR_DEFAULT,
            max_minor: ORDER_MAX_MINOR_DEFAULT,
        }
    }
}

impl OrderLimits {
    /// `PAYLEDGER_ORDER_MIN_AMOUNT` and `PAYLEDGER_ORDER_MAX_AMOUNT`, in fen.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Vec<InvalidVariable>> {
        let mut problems = Vec::new();
        let mut read = |variable: &'static str, default: i64| {
            positive_number(
                &lookup,
                variable,
                default,
                "a positive whole number of fen",
                &mut problems,
            )
        };
        let limits = Self {
            min_minor: read("PAYLEDGER_ORDER_MIN_AMOUNT", ORDER_MIN_MINOR_DEFAULT),
            max_minor: read("PAYLEDGER_ORDER_MAX_AMOUNT", ORDER_MAX_MINOR_DEFAULT),
        };
        if problems.is_empty() && limits.min_minor > limits.max_minor {
            problems.push(InvalidVariable {
                variable: "PAYLEDGER_ORDER_MIN_AMOUNT",
                reason: "is greater than PAYLEDGER_ORDER_MAX_AMOUNT".to_owned(),
            });
        }
        if problems.is_empty() {
            Ok(limits)
        } else {
            Err(problems)
        }
    }

    pub fn allows(&self, amount_minor: i64) -> bool {
        (self.min_minor..=self.max_minor).contains(&amount_minor)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn limits_default_and_parse_and_name_bad_values() {
        assert_eq!(
            OrderLimits::from_lookup(|_| None).unwrap(),
            OrderLimits::default()
        );
        let limits = OrderLimits::from_lookup(|name| match name {
            "PAYLEDGER_ORDER_MIN_AMOUNT" => Some("100".to_owned()),
            "PAYLEDGER_ORDER_MAX_AMOUNT" => Some("50000".to_owned()),
            _ => None,
        })
        .unwrap();
        assert!(limits.allows(100) && limits.allows(50_000));
        assert!(!limits.allows(99) && !limits.allows(50_001));
        let problems = OrderLimits::from_lookup(|name| match name {
            "PAYLEDGER_ORDER_MAX_AMOUNT" => Some("-3".to_owned()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(problems[0].variable, "PAYLEDGER_ORDER_MAX_AMOUNT");
        let inverted = OrderLimits::from_lookup(|name| match name {
            "PAYLEDGER_ORDER_MIN_AMOUNT" => Some("500".to_owned()),
            "PAYLEDGER_ORDER_MAX_AMOUNT" => Some("100".to_owned()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(inverted[0].variable, "PAYLEDGER_ORDER_MIN_AMOUNT");
    }
}
