//! `GET /openapi.json`: the API's OpenAPI 3.1 document. It is assembled here, once, from the
//! handlers' `#[utoipa::path]` annotations and the very request and response types the
//! handlers send, so the document cannot describe a field the server does not produce; the
//! integration tests hold it against the routes the router serves and the bodies it answers.

use std::sync::LazyLock;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ApiError;

/// What the document says about the API as a whole; each operation says the rest.
const DESCRIPTION: &str = "An event-sourced payment ledger that sells membership plans.

Money is always an integer in minor units of its currency (fen for CNY), never a float, and \
travels with its ISO 4217 currency code. Times are RFC 3339 in UTC unless a field says unix \
seconds or milliseconds.

Authentication: user and admin routes take `Authorization: Bearer <JWT>` (HS256; claims `sub`, \
`role` = `user` | `admin`, `exp`, `iat`). The gateway webhooks are authenticated by the \
provider's signature over the raw body instead, the checkout page's own calls by the link's \
secret in the path, and `/metrics` by an admin token or the metrics token.

Every error is `{\"error\": {\"code\", \"message\"}}` (schema `ErrorBody`): the code is stable \
and each operation lists the codes it can answer; the message is for people. Any route may also \
answer 405 `request.method_not_allowed`, 408 `request.body_timeout`, 413 `request.too_large` \
(bodies over 16 KiB), 500 `internal` or 503 `service.database_unavailable` in that shape, and \
an unknown path is 404 `route.not_found`.

Commands answer with `X-Ledger-Position`, the log position they committed at.

The test-mode sandbox gateway mounted under `/sandbox` (when the service runs with it) is part \
of the sandbox, not of this API, and is not described here.";

#[derive(OpenApi)]
#[openapi(
    info(title = "payledger", description = DESCRIPTION),
    paths(
        super::landing::page,
        document,
        super::health::healthz,
        super::health::metrics,
        super::plans::list,
        super::orders::create,
        super::orders::show,
        super::orders::events,
        super::orders::qr_svg,
        super::refunds::create,
        super::transactions::list,
        super::membership::show,
        super::events::list,
        super::webhook_endpoints::create,
        super::webhook_endpoints::list,
        super::webhook_endpoints::delete,
        super::webhook_endpoints::deliveries,
        super::webhook_endpoints::retry,
        super::audit::head,
        super::webhooks::receive,
    ),
    modifiers(&SecuritySchemes),
)]
struct ApiDocument;

/// The schemes the operations' `security` names.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An HS256 JWT: `sub` is the user id, `role` is `user` or `admin`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The operators' token `PAYLEDGER_METRICS_TOKEN`, when one is configured.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON, built on first use: it depends on the code only.
static DOCUMENT: LazyLock<Result<String, String>> = LazyLock::new(|| {
    let mut document = ApiDocument::openapi();
    document.merge(super::checkout::CheckoutDocument::openapi());
    document.to_json().map_err(|error| error.to_string())
});

/// Changes only with a release; a short cache keeps an upgrade visible soon.
const DOCUMENT_CACHE: &str = "public, max-age=300";

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi_document",
    tag = "operations",
    summary = "This document",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object, content_type = "application/json"))
)]
pub async fn document() -> Result<Response, ApiError> {
    let json = DOCUMENT.as_ref().map_err(ApiError::internal)?;
    Ok((
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, DOCUMENT_CACHE),
        ],
        json.as_str(),
    )
        .into_response())
}
