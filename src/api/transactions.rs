//! The transaction history: a user's payments and refunds, newest first, by cursor.

use axum::extract::State;
use axum::Json;
use projections::transaction_history::{self, PAGE_SIZE_MAX};
use projections::Tables;
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{AppQuery, Caller};
use crate::error::ApiError;
use crate::state::AppState;

const PAGE_SIZE_DEFAULT: i64 = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    limit: Option<i64>,
    cursor: Option<String>,
    user_id: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(params): AppQuery<Params>,
) -> Result<Json<Value>, ApiError> {
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
    let items: Vec<Value> = entries
        .iter()
        .map(|entry| {
            json!({
                "id": entry.entry_id,
                "order_id": entry.order_id,
                "kind": entry.kind,
                "amount": entry.amount_minor,
                "currency": entry.currency,
                "channel": entry.channel,
                "gateway_ref": entry.gateway_ref,
                "at": entry.at,
                "position": entry.position,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items, "next_cursor": next_cursor })))
}
