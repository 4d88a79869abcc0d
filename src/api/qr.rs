//! Answering with an order's QR code as an SVG image, for the API and the checkout page.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use projections::order_status::OrderStatusRow;

use crate::checkout::{qr, CheckoutError};
use crate::error::ApiError;

/// The image never runs anything, and a code that stops being payable must not be cached.
const SVG_HEADERS: [(axum::http::HeaderName, &str); 3] = [
    (CONTENT_TYPE, "image/svg+xml"),
    (CACHE_CONTROL, "no-store"),
    (
        CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'",
    ),
];

/// The code of a pending order; any other order has none to show (409 `order.not_payable`).
pub fn svg_response(row: &OrderStatusRow) -> Result<Response, ApiError> {
    let credential = row
        .qr_code
        .as_deref()
        .filter(|_| row.status == "pending")
        .ok_or(CheckoutError::NotPayable)?;
    let drawing = qr::svg(credential).map_err(CheckoutError::from)?;
    Ok((SVG_HEADERS, drawing).into_response())
}
