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

use utoipa::OpenApi;

use super::route_table::RouteTable;

/// The checkout's part of the API document (its handlers are private to this module).
#[derive(OpenApi)]
#[openapi(paths(
    sessions::create,
    assets::embed_script,
    assets::page_script,
    assets::stylesheet,
    page::result_page,
    page::session_page,
    browser::place,
    browser::follow,
    browser::qr_svg,
))]
pub(super) struct CheckoutDocument;

/// The checkout's routes, added to the service's.
pub fn routes(table: RouteTable) -> RouteTable {
    table
        .post("/v1/checkout/sessions", sessions::create)
        .get("/checkout/embed.js", assets::embed_script)
        .get("/checkout/assets/checkout.js", assets::page_script)
        .get("/checkout/assets/checkout.css", assets::stylesheet)
        .get("/checkout/result/{order}", page::result_page)
        .get("/checkout/{secret}", page::session_page)
        .post("/checkout/{secret}/orders", browser::place)
        .get("/checkout/{secret}/orders/{order}", browser::follow)
        .get("/checkout/{secret}/orders/{order}/qr.svg", browser::qr_svg)
}

/// Fen as yuan text ("99.00"), exactly; a negative amount (never an order's) shows as 0.00.
fn yuan(amount_minor: i64) -> String {
    gateways::yuan::yuan_from_fen(amount_minor).unwrap_or_else(|_| "0.00".to_owned())
}
