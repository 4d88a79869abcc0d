//! The merchant's webhook endpoints and deliveries (admin): add an endpoint (its secret is
//! shown once), list and remove them, list deliveries with their attempts, send one again.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::extract::{AppJson, AppPath, AppQuery, Caller};
use crate::error::ApiError;
use crate::merchant::deliveries::{self, DeliveryRow, ListFilter};
use crate::merchant::endpoints::{self, Endpoint};
use crate::merchant::MerchantError;
use crate::state::AppState;

/// Deliveries listed when no `limit` is given.
pub const DELIVERIES_LIMIT_DEFAULT: i64 = 50;
/// The statuses a delivery can have.
const DELIVERY_STATUSES: [&str; 3] = ["pending", "delivered", "failed"];

/// `POST /v1/webhook-endpoints`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    url: String,
    /// The event types to deliver; empty or absent means all.
    #[serde(default)]
    event_types: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    endpoint: Endpoint,
    /// Shown this once: the receiver verifies signatures with it.
    secret: String,
}

#[derive(Debug, Serialize)]
pub struct EndpointList {
    endpoints: Vec<Endpoint>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<CreateEndpoint>,
) -> Result<(StatusCode, Json<CreatedEndpoint>), ApiError> {
    caller.require_admin()?;
    let (endpoint, secret) =
        endpoints::create(&state.store.read, &body.url, &body.event_types).await?;
    state.outbound.notify_waiters();
    Ok((
        StatusCode::CREATED,
        Json(CreatedEndpoint { endpoint, secret }),
    ))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<EndpointList>, ApiError> {
    caller.require_admin()?;
    let endpoints = endpoints::active(&state.store.read)
        .await
        .map_err(MerchantError::from)?;
    Ok(Json(EndpointList { endpoints }))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    endpoints::delete(&state.store.read, &id).await?;
    state.outbound.notify_waiters();
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/webhook-deliveries` filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    status: Option<String>,
    event_id: Option<String>,
    endpoint_id: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct DeliveryList {
    deliveries: Vec<DeliveryRow>,
}

pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(query): AppQuery<DeliveryQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    caller.require_admin()?;
    if let Some(status) = &query.status {
        if !DELIVERY_STATUSES.contains(&status.as_str()) {
            return Err(MerchantError::UnknownStatus(status.clone()).into());
        }
    }
    let filter = ListFilter {
        status: query.status,
        event_id: query.event_id,
        endpoint_id: query.endpoint_id,
        limit: query.limit.unwrap_or(DELIVERIES_LIMIT_DEFAULT),
    };
    let deliveries = deliveries::list(&state.store.read, &filter).await?;
    Ok(Json(DeliveryList { deliveries }))
}

#[derive(Debug, Serialize)]
pub struct RetryAccepted {
    id: String,
    status: &'static str,
}

pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<(StatusCode, Json<RetryAccepted>), ApiError> {
    caller.require_admin()?;
    deliveries::retry(&state.store.read, &id).await?;
    state.outbound.notify_waiters();
    Ok((
        StatusCode::ACCEPTED,
        Json(RetryAccepted {
            id,
            status: "pending",
        }),
    ))
}
