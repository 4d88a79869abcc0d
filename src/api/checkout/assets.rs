//! The page's script and stylesheet and the merchant's embed script, compiled into the
//! binary: the checkout works offline and loads nothing from elsewhere.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::{IntoResponse, Response};

const PAGE_SCRIPT: &str = include_str!("assets/checkout.js");
const STYLESHEET: &str = include_str!("assets/checkout.css");
const EMBED_SCRIPT: &str = include_str!("assets/embed.js");

/// Assets change only with a new release; a short cache keeps an upgrade visible soon.
const ASSET_CACHE: &str = "public, max-age=300";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, ASSET_CACHE),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/checkout/assets/checkout.js",
    operation_id = "get_checkout_page_script",
    tag = "checkout",
    summary = "The checkout page's script",
    security(()),
    responses((status = 200, description = "The asset", body = String, content_type = "text/javascript; charset=utf-8"))
)]
pub async fn page_script() -> Response {
    asset("text/javascript; charset=utf-8", PAGE_SCRIPT)
}

#[utoipa::path(
    get,
    path = "/checkout/assets/checkout.css",
    operation_id = "get_checkout_stylesheet",
    tag = "checkout",
    summary = "The checkout page's stylesheet",
    security(()),
    responses((status = 200, description = "The asset", body = String, content_type = "text/css; charset=utf-8"))
)]
pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

#[utoipa::path(
    get,
    path = "/checkout/embed.js",
    operation_id = "get_checkout_embed_script",
    tag = "checkout",
    summary = "The script a merchant's page includes to open the checkout in a modal",
    security(()),
    responses((status = 200, description = "The asset", body = String, content_type = "text/javascript; charset=utf-8"))
)]
pub async fn embed_script() -> Response {
    asset("text/javascript; charset=utf-8", EMBED_SCRIPT)
}
