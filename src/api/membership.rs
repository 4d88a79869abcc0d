//! The caller's membership: current tier, whether it is active, and the orders that bought it.

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use projections::{membership, Tables};
use serde_json::{json, Value};

use super::extract::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn show(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    Ok(Json(membership_data(&state, &caller.0.user_id).await?))
}

/// A member's membership as `GET /v1/membership` shows it to them.
pub(crate) async fn membership_data(state: &AppState, user_id: &str) -> Result<Value, ApiError> {
    let tables = Tables::live();
    let current = membership::find(&state.store.read, &tables, user_id).await?;
    let orders = membership::orders(&state.store.read, &tables, user_id).await?;
    let now = projections::schema::timestamp(&Utc::now());
    let body = match current {
        Some(current) => {
            let active = current.status == "active" && current.ends_at > now;
            json!({
                "user_id": user_id,
                "tier": if active { current.tier.as_str() } else { "free" },
                "active": active,
                "plan_id": current.plan_id,
                "ends_at": current.ends_at,
                "orders": orders.iter().map(|order| json!({
                    "order_id": order.order_id,
                    "plan_id": order.plan_id,
                    "tier": order.tier,
                    "period": order.period,
                    "starts_at": order.starts_at,
                    "ends_at": order.ends_at,
                    "revoked": order.revoked,
                })).collect::<Vec<_>>(),
            })
        }
        None => json!({
            "user_id": user_id,
            "tier": "free",
            "active": false,
            "plan_id": Value::Null,
            "ends_at": Value::Null,
            "orders": [],
        }),
    };
    Ok(body)
}
