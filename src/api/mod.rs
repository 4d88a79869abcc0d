//! The HTTP API: one module per resource, each handler thin.

mod audit;
mod body;
mod checkout;
pub mod client_ip;
mod events;
mod extract;
mod health;
mod landing;
pub(crate) mod membership;
pub(crate) mod orders;
mod plans;
mod qr;
mod refunds;
mod request;
mod transactions;
mod webhook_endpoints;
mod webhooks;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::routing::{delete, get, post};
use axum::Router;

use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::checkout::origin::Origin;
use crate::error::ApiError;
use crate::state::AppState;

/// Largest request body accepted; every legitimate body is far smaller.
pub const BODY_LIMIT_BYTES: usize = 16 * 1024;

/// The whole service as a router; tests drive it over a real port.
pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.checkout.cors_origins);
    let router = Router::new()
        .route("/", get(landing::page))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/v1/plans", get(plans::list))
        .route("/v1/orders", post(orders::create))
        .route("/v1/orders/{id}", get(orders::show))
        .route("/v1/orders/{id}/events", get(orders::events))
        .route("/v1/orders/{id}/qr.svg", get(orders::qr_svg))
        .route("/v1/orders/{id}/refunds", post(refunds::create))
        .route("/v1/transactions", get(transactions::list))
        .route("/v1/membership", get(membership::show))
        .route("/v1/events", get(events::list))
        .route(
            "/v1/webhook-endpoints",
            post(webhook_endpoints::create).get(webhook_endpoints::list),
        )
        .route(
            "/v1/webhook-endpoints/{id}",
            delete(webhook_endpoints::delete),
        )
        .route("/v1/webhook-deliveries", get(webhook_endpoints::deliveries))
        .route(
            "/v1/webhook-deliveries/{id}/retry",
            post(webhook_endpoints::retry),
        )
        .route("/v1/audit/head", get(audit::head))
        .route(
            "/v1/webhooks/{provider}",
            post(webhooks::receive)
                .layer(DefaultBodyLimit::max(webhooks::WEBHOOK_BODY_LIMIT_BYTES)),
        )
        .merge(checkout::routes())
        .fallback(|| async { ApiError::not_found("route.not_found", "no route for this path") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(axum::middleware::from_fn(body::read_whole_body))
        .with_state(state);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// How long a browser may cache a preflight's answer.
const CORS_PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// Lets pages on `origins` call the API from a browser, with a bearer token (never cookies:
/// the API has none). No origins, no CORS headers at all.
fn cors_layer(origins: &[Origin]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin.as_str()).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                AUTHORIZATION,
                CONTENT_TYPE,
                IF_NONE_MATCH,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([ETAG, request::POSITION_HEADER])
            .max_age(CORS_PREFLIGHT_MAX_AGE),
    )
}
