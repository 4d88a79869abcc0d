//! The plan catalog.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::extract::Caller;
use crate::state::AppState;

pub async fn list(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    let plans: Vec<Value> = state
        .catalog
        .plans()
        .iter()
        .map(|plan| {
            json!({
                "id": plan.id.to_string(),
                "name": plan.name,
                "tier": plan.tier,
                "period": plan.period,
                "amount": plan.price.amount_minor(),
                "currency": plan.price.currency().code(),
                "purchasable": plan.is_purchasable(),
            })
        })
        .collect();
    Json(json!({ "plans": plans }))
}
