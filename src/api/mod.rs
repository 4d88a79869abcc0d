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
mod openapi;
pub(crate) mod orders;
mod plans;
mod qr;
mod refunds;
mod request;
mod route_table;
mod transactions;
mod webhook_endpoints;
mod webhooks;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::routing::post;
use axum::Router;

use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::checkout::origin::Origin;
use crate::error::ApiError;
use crate::state::AppState;
use route_table::RouteTable;

/// Largest request body accepted; every legitimate body is far smaller.
pub const BODY_LIMIT_BYTES: usize = 16 * 1024;

/// The whole service as a router; tests drive it over a real port.
pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.checkout.cors_origins);
    // Routes are added to the table only (see `routes`), never here: the table is what the
    // API document is checked against.
    let router = routes()
        .into_router()
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

/// Every (method, path) the router serves (the sandbox's, mounted beside it, are not the
/// API's).
pub fn served_routes() -> Vec<(Method, &'static str)> {
    routes().served().to_vec()
}

fn routes() -> RouteTable {
    let table = RouteTable::new()
        .get("/", landing::page)
        .get("/openapi.json", openapi::document)
        .get("/healthz", health::healthz)
        .get("/metrics", health::metrics)
        .get("/v1/plans", plans::list)
        .post("/v1/orders", orders::create)
        .get("/v1/orders/{id}", orders::show)
        .get("/v1/orders/{id}/events", orders::events)
        .get("/v1/orders/{id}/qr.svg", orders::qr_svg)
        .post("/v1/orders/{id}/refunds", refunds::create)
        .get("/v1/transactions", transactions::list)
        .get("/v1/membership", membership::show)
        .get("/v1/events", events::list)
        .post("/v1/webhook-endpoints", webhook_endpoints::create)
        .get("/v1/webhook-endpoints", webhook_endpoints::list)
        .delete("/v1/webhook-endpoints/{id}", webhook_endpoints::delete)
        .get("/v1/webhook-deliveries", webhook_endpoints::deliveries)
        .post(
            "/v1/webhook-deliveries/{id}/retry",
            webhook_endpoints::retry,
        )
        .get("/v1/audit/head", audit::head)
        .add(
            Method::POST,
            "/v1/webhooks/{provider}",
            post(webhooks::receive)
                .layer(DefaultBodyLimit::max(webhooks::WEBHOOK_BODY_LIMIT_BYTES)),
        );
    checkout::routes(table)
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
