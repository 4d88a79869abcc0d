//! The plan catalog. Public: prices are no secret, and a pricing page or a checkout on
//! another origin lists them without a token.

use aggregates::Plan;
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// `GET /v1/plans`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanList {
    plans: Vec<PlanItem>,
}

/// One plan as the API shows it; `amount` is in minor units (fen).
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanItem {
    pub id: String,
    pub name: String,
    pub tier: &'static str,
    /// `monthly`, `yearly`, `months` or `days`.
    pub period: &'static str,
    /// The price as an integer in minor units of `currency` (fen for CNY), never a float.
    pub amount: i64,
    /// ISO 4217 code, e.g. `CNY`.
    pub currency: &'static str,
    /// False for a plan that is not on sale or costs nothing (no order can be placed).
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

#[utoipa::path(
    get,
    path = "/v1/plans",
    operation_id = "list_plans",
    tag = "plans",
    summary = "The plan catalog",
    security(()),
    responses((status = 200, description = "Every plan", body = PlanList))
)]
pub async fn list(State(state): State<AppState>) -> Json<PlanList> {
    Json(PlanList {
        plans: state.catalog.plans().iter().map(PlanItem::from).collect(),
    })
}
