//! The plan catalog. Public: prices are no secret, and a pricing page or a checkout on
//! another origin lists them without a token.

use aggregates::Plan;
use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::state::AppState;

/// `GET /v1/plans`.
#[derive(Debug, Serialize)]
pub struct PlanList {
    plans: Vec<PlanItem>,
}

/// One plan as the API shows it; `amount` is in minor units (fen).
#[derive(Debug, Serialize)]
pub struct PlanItem {
    pub id: String,
    pub name: String,
    pub tier: &'static str,
    pub period: &'static str,
    pub amount: i64,
    pub currency: &'static str,
    pub purchasable: bool,
}

impl From<&Plan> for PlanItem {
    fn from(plan: &Plan) -> Self {
        Self {
            id: plan.id.to_string(),
            name: plan.name.clone(),
            tier: plan.tier.as_str(),
            period: plan.period.as_str(),
            amount: plan.price.amount_minor(),
            currency: plan.price.currency().code(),
            purchasable: plan.is_purchasable(),
        }
    }
}

pub async fn list(State(state): State<AppState>) -> Json<PlanList> {
    Json(PlanList {
        plans: state.catalog.plans().iter().map(PlanItem::from).collect(),
    })
}
