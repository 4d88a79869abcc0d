//! The sandbox's HTTP surface: the Ping++ API (behind the API key), the knobs, and the
//! customer's pages. Handlers only translate HTTP to `Sandbox` calls and back.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use super::error::SandboxError;
use super::knobs::{Knobs, KnobsUpdate, PayOptions};
use super::paging::RefundListQuery;
use super::validation::parse_json;
use super::{alipay, auth, pages, wechatpay, DeliveryStats, Payment, Sandbox};

/// Requests are small JSON objects; anything bigger is refused before it is read.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub(super) fn router(sandbox: Sandbox) -> Router {
    let api = Router::new()
        .route("/v1/charges", post(create_charge))
        .route("/v1/charges/{id}", get(retrieve_charge))
        .route(
            "/v1/charges/{id}/refunds",
            post(create_refund).get(list_refunds),
        )
        .route("/v1/charges/{id}/refunds/{refund_id}", get(retrieve_refund))
        .route("/v1/charges/{id}/reverse", post(reverse_charge))
        .route("/knobs", get(knobs).post(update_knobs))
        .route("/deliveries", get(deliveries))
        .route_layer(middleware::from_fn_with_state(
            sandbox.clone(),
            require_api_key,
        ));
    // The customer has no API key: the pages and the pay button are open.
    let customer = Router::new()
        .route("/charges/{id}", get(charge_page))
        .route("/charges/{id}/pay", post(pay));
    // Alipay and WeChat Pay authenticate by request signatures, checked in their handlers.
    let providers = Router::new()
        .route("/alipay/gateway.do", post(alipay::gateway))
        .route(
            "/wechatpay/v3/pay/transactions/native",
            post(wechatpay::native),
        )
        .route(
            "/wechatpay/v3/pay/transactions/out-trade-no/{out_trade_no}",
            get(wechatpay::query),
        )
        .route(
            "/wechatpay/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
            post(wechatpay::close),
        )
        .route(
            "/wechatpay/v3/refund/domestic/refunds",
            post(wechatpay::refund),
        )
        .route(
            "/wechatpay/v3/refund/domestic/refunds/{out_refund_no}",
            get(wechatpay::refund_query),
        );
    api.merge(customer)
        .merge(providers)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(sandbox)
}

async fn require_api_key(State(sandbox): State<Sandbox>, request: Request, next: Next) -> Response {
    match auth::check(sandbox.inner.api_key.as_ref(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn create_charge(
    State(sandbox): State<Sandbox>,
    body: Bytes,
) -> Result<Json<Value>, SandboxError> {
    sandbox.create_charge(parse_json(&body)?).map(Json)
}

async fn retrieve_charge(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
) -> Result<Json<Value>, SandboxError> {
    sandbox.charge(&id).map(Json)
}

async fn create_refund(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, SandboxError> {
    sandbox.create_refund(&id, parse_json(&body)?).map(Json)
}

async fn list_refunds(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    page: Result<Query<RefundListQuery>, QueryRejection>,
) -> Result<Json<Value>, SandboxError> {
    let Query(page) =
        page.map_err(|rejection| SandboxError::invalid(None, rejection.body_text()))?;
    sandbox.refund_list(&id, &page).map(Json)
}

async fn retrieve_refund(
    State(sandbox): State<Sandbox>,
    Path((id, refund_id)): Path<(String, String)>,
) -> Result<Json<Value>, SandboxError> {
    sandbox.refund(&id, &refund_id).map(Json)
}

async fn reverse_charge(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
) -> Result<Json<Value>, SandboxError> {
    sandbox.reverse_charge(&id).map(Json)
}

async fn knobs(State(sandbox): State<Sandbox>) -> Json<Knobs> {
    Json(sandbox.knobs())
}

async fn update_knobs(
    State(sandbox): State<Sandbox>,
    body: Bytes,
) -> Result<Json<Knobs>, SandboxError> {
    let update: KnobsUpdate = parse_json(&body)?;
    sandbox.update_knobs(update).map(Json)
}

async fn deliveries(State(sandbox): State<Sandbox>) -> Json<DeliveryStats> {
    Json(sandbox.deliveries())
}

async fn charge_page(State(sandbox): State<Sandbox>, Path(id): Path<String>) -> Response {
    match sandbox.page_charge(&id) {
        Ok(charge) => pages::charge(&charge, &sandbox.pay_url(&id), super::now()),
        Err(error) => pages::error(error.status(), &error.to_string()),
    }
}

/// A browser (the page's form) gets HTML back; API clients and tests get JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

async fn pay(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    headers: HeaderMap,
    options: Result<Query<PayOptions>, QueryRejection>,
) -> Response {
    let outcome = options
        .map_err(|rejection| SandboxError::invalid(None, rejection.body_text()))
        .and_then(|Query(options)| sandbox.pay(&id, &options));
    if !wants_html(&headers) {
        return outcome.map(Json).into_response();
    }
    let page = outcome.and_then(|Payment { event_id, .. }| {
        let charge = sandbox.page_charge(&id)?;
        Ok(pages::paid(
            &charge,
            &sandbox.page_url(&id),
            &event_id,
            super::now(),
        ))
    });
    page.unwrap_or_else(|error| pages::error(error.status(), &error.to_string()))
}
