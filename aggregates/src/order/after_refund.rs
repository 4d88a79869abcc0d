//! What a successful refund leaves of the order. The rule lives here once: `decide` writes its
//! result into `Refunded` (version 1.1) so that readers copy it instead of repeating the rule;
//! `apply` folds 1.0 events, which were stored without it, by the same rule (and checks 1.1
//! events against it in debug builds).

use serde::{Deserialize, Serialize};

use crate::money::{Money, MoneyError};

use super::state::OrderDetails;
use super::OrderStatus;

/// The order as a successful refund leaves it.
///
/// Invariants: `status` is `Refunded` exactly when `refunded_total` equals the confirmed
/// payment; a closed order (expired, failed, cancelled) keeps its status, its refunds giving
/// back late money; `needs_refund` never counts the payment, only late or duplicate money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAfterRefund {
    /// `PartiallyRefunded` or `Refunded` for a paid order; the unchanged status of a closed one.
    pub status: OrderStatus,
    /// Every successful refund of the order so far, this one included.
    pub refunded_total: Money,
    /// Late or duplicate money the order still holds and must give back; zero when none.
    pub needs_refund: Money,
}

impl OrderDetails {
    /// The order once a refund of `amount` has gone through.
    pub(super) fn after_refund(&self, amount: Money) -> Result<OrderAfterRefund, MoneyError> {
        let refunded_total = self.refunded.checked_add(amount)?;
        // Late money going back leaves a closed order closed (owing that much less).
        let status = if self.status.is_closed() {
            self.status
        } else if self
            .payment
            .as_ref()
            .is_some_and(|payment| payment.amount == refunded_total)
        {
            OrderStatus::Refunded
        } else {
            OrderStatus::PartiallyRefunded
        };
        let needs_refund = still_owed(self.held_for_refund, status, refunded_total)
            .unwrap_or(Money::zero(self.amount.currency()));
        Ok(OrderAfterRefund {
            status,
            refunded_total,
            needs_refund,
        })
    }
}

/// Late or duplicate money still to be given back, `None` when nothing is. A closed order's
/// refunds give back the money it holds; an open order's refunds give back its payment, so
/// what it holds is still owed in full.
pub(super) fn still_owed(
    held: Option<Money>,
    status: OrderStatus,
    refunded: Money,
) -> Option<Money> {
    let held = held?;
    if !status.is_closed() || refunded.is_zero() {
        return Some(held);
    }
    held.checked_sub(refunded)
        .ok()
        .filter(|owed| !owed.is_zero())
}
