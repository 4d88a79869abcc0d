//! Reading every request body to its end before routing.
//!
//! A handler that refuses a request early (no token, unknown route, wrong method) would
//! otherwise leave the body unread, and the server would have to drop the connection, which a
//! keep-alive client only discovers when its next request fails. Bodies are small here, so they
//! are read up front; one too large to read is refused and the connection closed, saying so.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONNECTION;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::webhooks::WEBHOOK_BODY_LIMIT_BYTES;
use crate::error::ApiError;

/// The most any route accepts; tighter per-route limits still apply after this.
pub const REQUEST_BODY_MAX_BYTES: usize = WEBHOOK_BODY_LIMIT_BYTES;

pub async fn read_whole_body(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, REQUEST_BODY_MAX_BYTES).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(_) => {
            let mut response = ApiError::TooLarge.into_response();
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}
