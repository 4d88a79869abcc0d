//! The transaction history: a user's payments and refunds, newest first, by cursor.

use axum::extract::State;
use axum::Json;
use projections::transaction_history::HistoryEntry;
use projections::transaction_history::{self, PAGE_SIZE_MAX};
use projections::Tables;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{AppQuery, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

const PAGE_SIZE_DEFAULT: i64 = 20;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// Entries per page, 1 to 100 (default 20).
    limit: Option<i64>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// Another user's history (admin only); the caller's own by default.
    user_id: Option<String>,
}

/// One page of the history, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionPage {
    items: Vec<Transaction>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// A payment or refund.
#[derive(Debug, Serialize, ToSchema)]
pub struct Transaction {
    id: String,
    order_id: String,
    /// `payment`, `refund`, `mismatched_payment`, `late_payment` or `duplicate_payment`.
    kind: String,
    /// Integer minor units of `currency` (fen for CNY); never a float.
    amount: i64,
    /// ISO 4217 code, e.g. `CNY`.
    currency: String,
    /// `alipay_qr` or `wx_pub_qr`.
    channel: String,
    /// The gateway's id for the charge or refund, when it gave one.
    #[schema(required = true)]
    gateway_ref: Option<String>,
    /// When it was recorded (RFC 3339, UTC).
    at: String,
    /// The log position of the fact.
    position: i64,
}

impl From<HistoryEntry> for Transaction {
    fn from(entry: HistoryEntry) -> Self {
        Self {
            id: entry.entry_id,
            order_id: entry.order_id,
            kind: entry.kind,
            amount: entry.amount_minor,
            currency: entry.currency,
            channel: entry.channel,
            gateway_ref: entry.gateway_ref,
            at: entry.at,
            position: entry.position,
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/transactions",
    operation_id = "list_transactions",
    tag = "transactions",
    summary = "Payments and refunds, newest first",
    params(Params),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the history", body = TransactionPage),
        (status = 400, description = "`transactions.invalid_cursor`, `request.malformed_query`", body = ErrorBody),
        (status = 401, description = "`auth.*`: no token or a bad one", body = ErrorBody),
        (status = 403, description = "`auth.forbidden`: another user's history without the admin role", body = ErrorBody),
        (status = 422, description = "`transactions.invalid_limit`", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(params): AppQuery<Params>,
) -> Result<Json<TransactionPage>, ApiError> {
    let user_id = match params.user_id {
        Some(user_id) if user_id != caller.0.user_id => {
            caller.require_admin()?;
            user_id
        }
        _ => caller.0.user_id.clone(),
    };
    let limit = params.limit.unwrap_or(PAGE_SIZE_DEFAULT);
    if !(1..=PAGE_SIZE_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            "transactions.invalid_limit",
            format!("limit must be between 1 and {PAGE_SIZE_MAX}"),
        ));
    }
    let before = params
        .cursor
        .map(|cursor| {
            cursor
                .parse::<i64>()
                .ok()
                .filter(|position| *position > 0)
                .ok_or_else(|| {
                    ApiError::malformed("transactions.invalid_cursor", "cursor is not valid")
                })
        })
        .transpose()?;
    let entries =
        transaction_history::page(&state.store.read, &Tables::live(), &user_id, before, limit)
            .await?;
    let next_cursor = if i64::try_from(entries.len()).unwrap_or(0) == limit {
        entries.last().map(|entry| entry.position.to_string())
    } else {
        None
    };
    Ok(Json(TransactionPage {
        items: entries.into_iter().map(Transaction::from).collect(),
        next_cursor,
    }))
}
