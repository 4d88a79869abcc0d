//! Why a membership refused a command. Each variant has a stable code the API sends to clients.

use chrono::{DateTime, Utc};

use crate::ids::{OrderId, UserId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("order {order_id} never activated this membership")]
    OrderNotActivated { order_id: OrderId },
    #[error("the membership runs until {ends_at}")]
    NotYetDue { ends_at: DateTime<Utc> },
    #[error("this membership belongs to {expected}, not {received}")]
    UserMismatch { expected: UserId, received: UserId },
    #[error("the membership end date would fall outside the supported calendar")]
    TimeOutOfRange,
}

impl SubscriptionError {
    /// A stable machine-readable code; clients branch on it, so never change an existing one.
    pub fn code(&self) -> &'static str {
        match self {
            SubscriptionError::OrderNotActivated { .. } => "subscription.order_not_activated",
            SubscriptionError::NotYetDue { .. } => "subscription.not_yet_due",
            SubscriptionError::UserMismatch { .. } => "subscription.user_mismatch",
            SubscriptionError::TimeOutOfRange => "subscription.time_out_of_range",
        }
    }
}
