//! Why a use case did not do what was asked. Mapped to HTTP once, in `crate::error`.

use aggregates::OrderError;
use cqrs_es::AggregateError;
use gateways::GatewayError;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("no plan has this id")]
    UnknownPlan,
    #[error("orders must cost between {min_minor} and {max_minor} fen")]
    AmountOutOfRange { min_minor: i64, max_minor: i64 },
    #[error("too many orders started; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: std::time::Duration },
    #[error("{open_max} orders are already awaiting payment; pay or let one expire first")]
    TooManyOpenOrders { open_max: u32 },
    #[error("the token's subject is not a user id")]
    InvalidUser,
    #[error("amount must be a positive number of minor units (fen): {0}")]
    InvalidRefundAmount(String),
    #[error("the order has no charge to refund")]
    NothingToRefund,
    #[error("Idempotency-Key must be 1 to 128 ASCII characters")]
    MalformedIdempotencyKey,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    #[error("the first request with this Idempotency-Key is still running; retry")]
    IdempotencyInProgress,
    /// The order's rules refused, or its store failed (conflicts exhausted, database down).
    #[error(transparent)]
    Order(#[from] AggregateError<OrderError>),
    /// The gateway refused or could not be reached; nothing is payable (or refunded).
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The gateway answered that the refund failed.
    #[error("the gateway refused the refund")]
    RefundRefused,
    #[error("the ledger's database failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Log(#[from] projections::LogError),
    /// The order could not be read back from the log.
    #[error(transparent)]
    Load(#[from] crate::store::load::LoadError),
}
