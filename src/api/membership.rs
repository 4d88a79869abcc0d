//! The caller's membership: current tier, whether it is active, and the orders that bought it.

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use projections::membership::{self, MembershipOrderRow};
use projections::Tables;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// A member's membership as `GET /v1/membership` shows it to them (and the merchant's
/// `membership.*` events carry it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MembershipBody {
    pub user_id: String,
    /// The tier in force now: the bought one while active, else `free`.
    pub tier: String,
    /// True while the membership's time has not run out and it was not revoked.
    pub active: bool,
    /// The plan of the latest grant; null for someone who never bought one.
    #[schema(required = true)]
    pub plan_id: Option<String>,
    /// When the membership ends (RFC 3339, UTC); null for someone who never bought one.
    #[schema(required = true)]
    pub ends_at: Option<String>,
    /// The orders whose grants make up the membership, by start.
    pub orders: Vec<MembershipOrder>,
}

/// One order's grant of membership time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MembershipOrder {
    pub order_id: String,
    pub plan_id: String,
    pub tier: String,
    /// The plan's period: `monthly`, `yearly`, `months` or `days`.
    pub period: String,
    pub starts_at: String,
    pub ends_at: String,
    /// True when a full refund took this order's time back.
    pub revoked: bool,
}

impl From<MembershipOrderRow> for MembershipOrder {
    fn from(row: MembershipOrderRow) -> Self {
        Self {
            order_id: row.order_id,
            plan_id: row.plan_id,
            tier: row.tier,
            period: row.period,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            revoked: row.revoked,
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/membership",
    operation_id = "get_membership",
    tag = "membership",
    summary = "The caller's membership",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The membership (tier `free` for someone who never bought one)", body = MembershipBody),
        (status = 401, description = "`auth.*`: no token or a bad one", body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<MembershipBody>, ApiError> {
    Ok(Json(membership_data(&state, &caller.0.user_id).await?))
}

/// A member's membership as `GET /v1/membership` shows it to them.
pub(crate) async fn membership_data(
    state: &AppState,
    user_id: &str,
) -> Result<MembershipBody, ApiError> {
    let tables = Tables::live();
    let current = membership::find(&state.store.read, &tables, user_id).await?;
    let now = projections::schema::timestamp(&Utc::now());
    let Some(current) = current else {
        return Ok(MembershipBody {
            user_id: user_id.to_owned(),
            tier: "free".to_owned(),
            active: false,
            plan_id: None,
            ends_at: None,
            orders: Vec::new(),
        });
    };
    let orders = membership::orders(&state.store.read, &tables, user_id).await?;
    let active = current.status == "active" && current.ends_at > now;
    Ok(MembershipBody {
        user_id: user_id.to_owned(),
        tier: if active {
            current.tier
        } else {
            "free".to_owned()
        },
        active,
        plan_id: Some(current.plan_id),
        ends_at: Some(current.ends_at),
        orders: orders.into_iter().map(MembershipOrder::from).collect(),
    })
}
