//! Where an order is in its life; the names are stable because views and clients store them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The lifecycle of one order:
///
/// ```text
/// Created -> Pending -> Paid -> PartiallyRefunded -> Refunded
///    |          |                      (Paid -> Refunded directly on a full refund)
///    +----------+--> Expired | Cancelled | Failed
/// ```
///
/// Expired, Cancelled and Failed are closed: money arriving afterwards is recorded as a late
/// payment and must be returned, it never reopens the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Created,
    Pending,
    Paid,
    PartiallyRefunded,
    Refunded,
    Expired,
    Failed,
    Cancelled,
}

impl OrderStatus {
    /// Expired, Cancelled or Failed: closed unpaid. Late money it holds can still be refunded.
    pub const fn is_closed(&self) -> bool {
        matches!(
            self,
            OrderStatus::Expired | OrderStatus::Cancelled | OrderStatus::Failed
        )
    }

    pub const fn as_str(&self) -> &'static str {
        match self {
            OrderStatus::Created => "created",
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::PartiallyRefunded => "partially_refunded",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Expired => "expired",
            OrderStatus::Failed => "failed",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}
