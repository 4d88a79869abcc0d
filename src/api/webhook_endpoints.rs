//! The merchant's webhook endpoints and deliveries (admin): add an endpoint (its secret is
//! shown once), list and remove them, list deliveries with their attempts, send one again.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{AppJson, AppPath, AppQuery, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::merchant::deliveries::{self, DeliveryRow, ListFilter};
use crate::merchant::endpoints::{self, Endpoint};
use crate::merchant::MerchantError;
use crate::state::AppState;

/// Deliveries listed when no `limit` is given.
pub const DELIVERIES_LIMIT_DEFAULT: i64 = 50;
/// The statuses a delivery can have.
const DELIVERY_STATUSES: [&str; 3] = ["pending", "delivered", "failed"];

/// `POST /v1/webhook-endpoints`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Where to POST the events (http or https).
    url: String,
    /// The event types to deliver; empty or absent means all.
    #[serde(default)]
    event_types: Vec<String>,
}

/// A new endpoint, with the secret its deliveries are signed with.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    endpoint: Endpoint,
    /// Shown this once: the receiver verifies signatures with it.
    secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    endpoints: Vec<Endpoint>,
}

#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints",
    operation_id = "create_webhook_endpoint",
    tag = "merchant events",
    summary = "Add an endpoint that merchant events are delivered to",
    request_body = CreateEndpoint,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The endpoint; its `secret` is shown only now", body = CreatedEndpoint),
        (status = 400, description = "`request.malformed_json`", body = ErrorBody),
        (status = 401, description = "`auth.*`: no token or a bad one", body = ErrorBody),
        (status = 403, description = "`auth.forbidden`: not an admin", body = ErrorBody),
        (status = 415, description = "`request.unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`webhook_endpoint.*`: a bad URL or an unknown event type; `request.invalid_body`", body = ErrorBody),
    )
)]
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

#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints",
    operation_id = "list_webhook_endpoints",
    tag = "merchant events",
    summary = "The endpoints merchant events are delivered to",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The active endpoints (without their secrets)", body = EndpointList),
        (status = 401, description = "`auth.*`: no token or a bad one", body = ErrorBody),
        (status = 403, description = "`auth.forbidden`: not an admin", body = ErrorBody),
    )
)]
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

#[utoipa::path(
    delete,
    path = "/v1/webhook-endpoints/{id}",
    operation_id = "delete_webhook_endpoint",
    tag = "merchant events",
    summary = "Stop delivering to an endpoint",
    description = "Its pending deliveries are marked failed.",
    params(("id" = String, Path, description = "The endpoint id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "`auth.*`: no token or a bad one", body = ErrorBody),
        (status = 403, description = "`auth.forbidden`: not an admin", body = ErrorBody),
        (status = 404, description = "`webhook_endpoint.not_found`", body = ErrorBody),
        (status = 409, description = "`webhook_endpoint.configured`: the endpoint from the environment is changed there", body = ErrorBody),
    )
)]
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
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending`, `delivered` or `failed`.
    status: Option<String>,
    /// One merchant event's deliveries (`evt_...`).
    event_id: Option<String>,
    /// One endpoint's deliveries.
    endpoint_id: Option<String>,
    /// At most this many (default 50).
    limit: Option<i64>,
}

/// Deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    deliveries: Vec<DeliveryRow>,
}

#[utoipa::path(
    get,
    path = "/v1/webhook-deliveries",
    operation_id = "list_webhook_deliveries",
    tag = "merchant events",
    summary = "Deliveries of merchant events, newest first, with every attempt",
    params(DeliveryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The deliveries", body = DeliveryList),
        (status = 400, description = "`request.malformed_query`", body = ErrorBody),
        (status = 401, description = "`auth.*`: no token or a bad one", body = ErrorBody),
        (status = 403, description = "`auth.forbidden`: not an admin", body = ErrorBody),
        (status = 422, description = "`webhook_delivery.unknown_status`", body = ErrorBody),
    )
)]
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

/// A delivery queued to be sent again now.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryAccepted {
    id: String,
    /// Always `pending`.
    status: &'static str,
}

#[utoipa::path(
    post,
    path = "/v1/webhook-deliveries/{id}/retry",
    operation_id = "retry_webhook_delivery",
    tag = "merchant events",
    summary = "Send a delivery again now, whatever its status",
    params(("id" = String, Path, description = "The delivery id")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued", body = RetryAccepted),
        (status = 401, description = "`auth.*`: no token or a bad one", body = ErrorBody),
        (status = 403, description = "`auth.forbidden`: not an admin", body = ErrorBody),
        (status = 404, description = "`webhook_delivery.not_found`", body = ErrorBody),
        (status = 409, description = "`webhook_delivery.endpoint_deleted`", body = ErrorBody),
    )
)]
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
