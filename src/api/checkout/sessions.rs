//! `POST /v1/checkout/sessions`: a merchant's backend opens a hosted checkout for one of its
//! users and gets the link to send the buyer to.

use aggregates::{Channel, PlanId, UserId};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::extract::{AppJson, Caller};
use crate::checkout::page_path;
use crate::checkout::{self, CheckoutError, OpenSession, Opened};
use crate::error::{ApiError, ErrorBody};
use crate::ledger::LedgerError;
use crate::state::AppState;

/// Every field is optional: without a plan the page offers the catalog, without a channel
/// the buyer picks one. `user_id` is for an admin (service) token opening a checkout for a
/// user; a user's token opens checkouts for that user only.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// The plan to sell; without it the page offers every plan on sale.
    plan_id: Option<String>,
    /// `alipay_qr` or `wx_pub_qr`; without it the buyer picks.
    channel: Option<String>,
    /// Absolute URL on an allowed redirect origin, where the page returns after success.
    success_url: Option<String>,
    /// Absolute URL on an allowed redirect origin, where cancel leads.
    cancel_url: Option<String>,
    /// The buyer, for an admin token opening a checkout for a user.
    user_id: Option<String>,
}

/// `201`: the link to send the buyer to, which carries the session's secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionCreated {
    id: String,
    /// The hosted checkout page; it carries the link's secret.
    url: String,
    /// RFC 3339, UTC.
    expires_at: String,
}

#[utoipa::path(
    post,
    path = "/v1/checkout/sessions",
    operation_id = "create_checkout_session",
    tag = "checkout",
    summary = "Open a hosted checkout for a user",
    request_body = CreateSession,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The checkout link", body = SessionCreated),
        (status = 400, description = "`request.malformed_json`", body = ErrorBody),
        (status = 401, description = "`auth.*`: no token or a bad one", body = ErrorBody),
        (status = 403, description = "`auth.forbidden`: `user_id` of another user without the admin role", body = ErrorBody),
        (status = 415, description = "`request.unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`plan.unknown`, `channel.unknown`, `user.invalid`, `checkout.redirect_not_allowed`, `request.invalid_body`", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<CreateSession>,
) -> Result<(StatusCode, Json<SessionCreated>), ApiError> {
    let opened = checkout::open_session(&state, body.into_request(&caller)?).await?;
    Ok((StatusCode::CREATED, Json(created(&state, &opened))))
}

impl CreateSession {
    fn into_request(self, caller: &Caller) -> Result<OpenSession, ApiError> {
        let principal = &caller.0;
        let user = match self.user_id {
            Some(user) if user != principal.user_id && !principal.is_admin() => {
                return Err(CheckoutError::ActingForOthers.into())
            }
            Some(user) => user,
            None => principal.user_id.clone(),
        };
        Ok(OpenSession {
            user_id: UserId::parse(&user).map_err(|_| LedgerError::InvalidUser)?,
            plan_id: self
                .plan_id
                .map(|plan| PlanId::parse(&plan).map_err(|_| LedgerError::UnknownPlan))
                .transpose()?,
            channel: self
                .channel
                .map(|channel| channel.parse::<Channel>())
                .transpose()
                .map_err(|_| CheckoutError::UnknownChannel)?,
            success_url: self.success_url,
            cancel_url: self.cancel_url,
        })
    }
}

fn created(state: &AppState, opened: &Opened) -> SessionCreated {
    SessionCreated {
        id: opened.session.id.clone(),
        url: format!("{}{}", state.public_url, page_path(&opened.secret)),
        expires_at: projections::schema::timestamp(&opened.session.expires_at),
    }
}
