//! `POST /v1/checkout/sessions`: a merchant's backend opens a hosted checkout for one of its
//! users and gets the link to send the buyer to.

use aggregates::{Channel, PlanId, UserId};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::api::extract::{AppJson, Caller};
use crate::checkout::page_path;
use crate::checkout::{self, CheckoutError, OpenSession, Opened};
use crate::error::ApiError;
use crate::ledger::LedgerError;
use crate::state::AppState;

/// Every field is optional: without a plan the page offers the catalog, without a channel
/// the buyer picks one. `user_id` is for an admin (service) token opening a checkout for a
/// user; a user's token opens checkouts for that user only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    plan_id: Option<String>,
    channel: Option<String>,
    success_url: Option<String>,
    cancel_url: Option<String>,
    user_id: Option<String>,
}

/// `201`: the link to send the buyer to, which carries the session's secret.
#[derive(Debug, Serialize)]
pub struct SessionCreated {
    id: String,
    url: String,
    expires_at: String,
}

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
