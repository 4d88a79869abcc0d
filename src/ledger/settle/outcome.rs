//! What became of a gateway event, and how the order's refusals of it are read: a fact that
//! is not the order's is kept as unmatched, one that came too early is deferred.

use aggregates::OrderError;

/// What became of a gateway event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Appended to the order's log.
    Applied,
    /// Already in the log (a redelivery or replay): nothing new appended.
    Duplicate,
    /// No order of ours matches: kept for reconciliation.
    Unmatched,
    /// A type we do not act on: kept for audit.
    Ignored,
    /// The order is not ready for it yet (e.g. a refund notice before the refund was
    /// recorded): kept, and the gateway is asked to deliver it again later.
    Deferred,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Unmatched => "unmatched",
            Self::Ignored => "ignored",
            Self::Deferred => "deferred",
        }
    }

    /// Whether the gateway should consider the delivery done.
    pub fn acknowledged(self) -> bool {
        !matches!(self, Self::Deferred)
    }
}

/// Domain refusals of a gateway fact: either it does not belong to the order (unmatched, kept)
/// or it came too early (deferred, redelivered later).
pub(super) fn classify(error: &OrderError) -> Outcome {
    match error {
        OrderError::NotCreated
        | OrderError::ChargeMismatch { .. }
        | OrderError::RefundAmountMismatch { .. }
        | OrderError::GatewayRefundMismatch { .. } => Outcome::Unmatched,
        OrderError::UnknownRefund { .. } | OrderError::InvalidTransition { .. } => {
            Outcome::Deferred
        }
        OrderError::AlreadyCreated
        | OrderError::NotPurchasable { .. }
        | OrderError::ExpiryNotInFuture { .. }
        | OrderError::NotYetExpired { .. }
        | OrderError::NonPositiveAmount
        | OrderError::CurrencyMismatch { .. }
        | OrderError::RefundExceedsRefundable { .. }
        | OrderError::RefundAlreadyRequested { .. }
        | OrderError::TooManyRefunds { .. }
        | OrderError::TextTooLong { .. }
        | OrderError::Ledger(_) => Outcome::Unmatched,
    }
}
