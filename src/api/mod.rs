//! The HTTP API: one module per resource, each handler thin.

mod audit;
mod body;
mod extract;
mod health;
mod membership;
mod orders;
mod plans;
mod refunds;
mod request;
mod transactions;
mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

/// Largest request body accepted; every legitimate body is far smaller.
pub const BODY_LIMIT_BYTES: usize = 16 * 1024;

/// The whole service as a router; tests drive it over a real port.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/v1/plans", get(plans::list))
        .route("/v1/orders", post(orders::create))
        .route("/v1/orders/{id}", get(orders::show))
        .route("/v1/orders/{id}/events", get(orders::events))
        .route("/v1/orders/{id}/refunds", post(refunds::create))
        .route("/v1/transactions", get(transactions::list))
        .route("/v1/membership", get(membership::show))
        .route("/v1/audit/head", get(audit::head))
        .route(
            "/v1/webhooks/{provider}",
            post(webhooks::receive)
                .layer(DefaultBodyLimit::max(webhooks::WEBHOOK_BODY_LIMIT_BYTES)),
        )
        .fallback(|| async { ApiError::not_found("route.not_found", "no route for this path") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(axum::middleware::from_fn(body::read_whole_body))
        .with_state(state)
}
