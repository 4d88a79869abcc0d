//! The hosted checkout over HTTP: the merchant's `POST /v1/checkout/sessions`, the page a
//! buyer opens (`/checkout/{secret}`, `/checkout/result/{order}`), the JSON its script calls
//! under the same secret, and the embedded assets. The use cases are in `crate::checkout`.

mod assets;
mod browser;
mod headers;
mod html;
mod i18n;
mod page;
mod sessions;
mod template;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

/// The checkout's routes (merged into the service's router).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/checkout/sessions", post(sessions::create))
        .route("/checkout/embed.js", get(assets::embed_script))
        .route("/checkout/assets/checkout.js", get(assets::page_script))
        .route("/checkout/assets/checkout.css", get(assets::stylesheet))
        .route("/checkout/result/{order}", get(page::result_page))
        .route("/checkout/{secret}", get(page::session_page))
        .route("/checkout/{secret}/orders", post(browser::place))
        .route("/checkout/{secret}/orders/{order}", get(browser::follow))
        .route(
            "/checkout/{secret}/orders/{order}/qr.svg",
            get(browser::qr_svg),
        )
}

/// Fen as yuan text ("99.00"), exactly; a negative amount (never an order's) shows as 0.00.
fn yuan(amount_minor: i64) -> String {
    gateways::yuan::yuan_from_fen(amount_minor).unwrap_or_else(|_| "0.00".to_owned())
}
