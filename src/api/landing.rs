//! `GET /`: a short page for a person who opens the service's address in a browser, instead
//! of a JSON 404. It names the service and points to what a person can use; it reveals no
//! configuration.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::IntoResponse;

/// The page is static: no script, no style, no outside resource.
const PAGE: &str = "<!doctype html>
<html lang=\"en\">
<head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">
<title>payledger</title></head>
<body>
<h1>payledger</h1>
<p>An event-sourced payment ledger: orders for membership plans, paid through Alipay or
WeChat Pay, every fact kept in an append-only log.</p>
<ul>
<li><a href=\"/healthz\">/healthz</a>: whether this instance and its database are up</li>
<li><code>/v1/...</code>: the JSON API, with a bearer token (see the README's HTTP API section)</li>
<li><a href=\"/openapi.json\">/openapi.json</a>: the API's OpenAPI 3.1 document</li>
<li><code>/v1/webhooks/{provider}</code>: where the payment gateways send signed notifications</li>
</ul>
</body>
</html>
";

#[utoipa::path(
    get,
    path = "/",
    operation_id = "landing_page",
    tag = "operations",
    summary = "A short page about the service, for a person with a browser",
    security(()),
    responses((status = 200, description = "The page", body = String, content_type = "text/html; charset=utf-8"))
)]
pub async fn page() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CONTENT_SECURITY_POLICY, "default-src 'none'"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        PAGE,
    )
}
