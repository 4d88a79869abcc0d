//! Why an order refused a command. Each variant has a stable code the API sends to clients.

use chrono::{DateTime, Utc};

use crate::ids::{ChargeId, GatewayRefundId, PlanId, RefundId};
use crate::money::{Currency, Money, MoneyError};

use super::OrderStatus;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("the order does not exist yet")]
    NotCreated,
    #[error("the order already exists")]
    AlreadyCreated,
    #[error("plan {plan_id} is free and cannot be ordered")]
    NotPurchasable { plan_id: PlanId },
    #[error("cannot {command} an order that is {from}")]
    InvalidTransition {
        from: OrderStatus,
        command: &'static str,
    },
    #[error("the charge expiry {expires_at} is not after {at}")]
    ExpiryNotInFuture {
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    #[error("the charge does not expire until {expires_at}")]
    NotYetExpired { expires_at: DateTime<Utc> },
    #[error("the order is paid through charge {expected}, not {received}")]
    ChargeMismatch {
        expected: ChargeId,
        received: ChargeId,
    },
    #[error("a refund must be greater than zero")]
    NonPositiveAmount,
    #[error("the order is in {expected}, not {received}")]
    CurrencyMismatch {
        expected: Currency,
        received: Currency,
    },
    #[error("refund of {requested} exceeds the {refundable} still refundable")]
    RefundExceedsRefundable { requested: Money, refundable: Money },
    #[error("refund {refund_id} was already requested")]
    RefundAlreadyRequested { refund_id: RefundId },
    #[error("no refund {refund_id} was requested on this order")]
    UnknownRefund { refund_id: RefundId },
    /// The gateway reports refund `refund_id` done for another amount than was requested.
    #[error("refund {refund_id} was requested for {expected}, the gateway reports {received}")]
    RefundAmountMismatch {
        refund_id: RefundId,
        expected: Money,
        received: Money,
    },
    /// The gateway reports refund `refund_id` under another of its refund ids than the one it
    /// gave when the refund was requested.
    #[error("refund {refund_id} is the gateway's {expected}, not {received}")]
    GatewayRefundMismatch {
        refund_id: RefundId,
        expected: GatewayRefundId,
        received: GatewayRefundId,
    },
    #[error("an order takes at most {max} refund requests")]
    TooManyRefunds { max: usize },
    #[error("{field} is longer than {max_chars} characters")]
    TextTooLong {
        field: &'static str,
        max_chars: usize,
    },
    /// Arithmetic on the order's own ledger failed; the checks before it should make this
    /// unreachable, so seeing it means a bug, not bad input.
    #[error("order ledger arithmetic failed: {0}")]
    Ledger(MoneyError),
}

impl OrderError {
    /// A stable machine-readable code; clients branch on it, so never change an existing one.
    pub fn code(&self) -> &'static str {
        match self {
            OrderError::NotCreated => "order.not_created",
            OrderError::AlreadyCreated => "order.already_created",
            OrderError::NotPurchasable { .. } => "order.not_purchasable",
            OrderError::InvalidTransition { .. } => "order.invalid_transition",
            OrderError::ExpiryNotInFuture { .. } => "order.expiry_not_in_future",
            OrderError::NotYetExpired { .. } => "order.not_yet_expired",
            OrderError::ChargeMismatch { .. } => "order.charge_mismatch",
            OrderError::NonPositiveAmount => "order.non_positive_amount",
            OrderError::CurrencyMismatch { .. } => "order.currency_mismatch",
            OrderError::RefundExceedsRefundable { .. } => "order.refund_exceeds_paid",
            OrderError::RefundAlreadyRequested { .. } => "order.refund_already_requested",
            OrderError::UnknownRefund { .. } => "order.unknown_refund",
            OrderError::RefundAmountMismatch { .. } => "order.refund_amount_mismatch",
            OrderError::GatewayRefundMismatch { .. } => "order.gateway_refund_mismatch",
            OrderError::TooManyRefunds { .. } => "order.too_many_refunds",
            OrderError::TextTooLong { .. } => "order.text_too_long",
            OrderError::Ledger(_) => "order.ledger",
        }
    }
}
