//! The pages a buyer opens: the checkout of a link, and the result page of one of its
//! orders that a redirect or a refresh lands on.

use aggregates::{Channel, PlanId};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::headers::page_headers;
use super::i18n::Lang;
use super::template::{self, PageModel};
use crate::api::extract::{AppPath, AppQuery};
use crate::api::orders::parse_order_id;
use crate::checkout::page_path;
use crate::checkout::{self, store, CheckoutError, Session};
use crate::error::ApiError;
use crate::state::AppState;

/// `?lang=en|zh-CN`; other parameters (a merchant's tracking, `embed`) are the script's.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
}

#[utoipa::path(
    get,
    path = "/checkout/{secret}",
    operation_id = "get_checkout_page",
    tag = "checkout",
    summary = "The hosted checkout page a buyer opens",
    params(("secret" = String, Path, description = "The checkout link's secret"), ("lang" = Option<String>, Query, description = "`en` or `zh-CN`; else the browser's preference")),
    security(()),
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html; charset=utf-8"),
        (status = 404, description = "A page saying the link is unknown or expired", body = String, content_type = "text/html; charset=utf-8"),
    )
)]
pub async fn session_page(
    State(state): State<AppState>,
    AppPath(secret): AppPath<String>,
    AppQuery(query): AppQuery<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::choose(query.lang.as_deref(), &headers);
    match model(&state, &secret, lang).await {
        Ok(model) => html(&state, StatusCode::OK, template::checkout_page(&model)),
        Err(error) => refused(&state, lang, error),
    }
}

/// `/checkout/result/{order}#{secret}`: the secret stays in the fragment, which browsers
/// never send, so the page's script reads the order with it.
#[utoipa::path(
    get,
    path = "/checkout/result/{order}",
    operation_id = "get_checkout_result_page",
    tag = "checkout",
    summary = "The result page of one order of a checkout (the secret stays in the URL's fragment)",
    params(("order" = String, Path, description = "The order id (a UUID)"), ("lang" = Option<String>, Query, description = "`en` or `zh-CN`; else the browser's preference")),
    security(()),
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html; charset=utf-8"),
        (status = 404, description = "A page saying the order is unknown", body = String, content_type = "text/html; charset=utf-8"),
    )
)]
pub async fn result_page(
    State(state): State<AppState>,
    AppPath(order): AppPath<String>,
    AppQuery(query): AppQuery<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::choose(query.lang.as_deref(), &headers);
    let Ok(order_id) = parse_order_id(&order) else {
        return html(
            &state,
            StatusCode::NOT_FOUND,
            template::notice_page(lang, true),
        );
    };
    let model = PageModel {
        lang,
        base: None,
        order: Some(order_id),
        plans: Vec::new(),
        channels: Vec::new(),
        success_url: None,
        cancel_url: None,
    };
    html(&state, StatusCode::OK, template::checkout_page(&model))
}

async fn model(state: &AppState, secret: &str, lang: Lang) -> Result<PageModel, CheckoutError> {
    let session = checkout::open(state, secret).await?;
    let newest = store::newest_order(&state.store.read, &session.id).await?;
    Ok(PageModel {
        lang,
        base: Some(page_path(secret)),
        order: newest,
        plans: plans(state, &session),
        channels: channels(&session),
        success_url: session.success_url,
        cancel_url: session.cancel_url,
    })
}

/// The session's plan, or every purchasable one.
fn plans(state: &AppState, session: &Session) -> Vec<aggregates::Plan> {
    let fixed = session
        .plan_id
        .as_deref()
        .and_then(|id| PlanId::parse(id).ok());
    state
        .catalog
        .plans()
        .iter()
        .filter(|plan| plan.is_purchasable())
        .filter(|plan| fixed.as_ref().map_or(true, |fixed| &plan.id == fixed))
        .cloned()
        .collect()
}

/// The session's channel, or every one.
fn channels(session: &Session) -> Vec<Channel> {
    match session.channel.as_deref().map(str::parse::<Channel>) {
        Some(Ok(channel)) => vec![channel],
        _ => Channel::all().to_vec(),
    }
}

fn refused(state: &AppState, lang: Lang, error: CheckoutError) -> Response {
    let error = ApiError::from(error);
    let status = error.status();
    let gone = !status.is_server_error();
    // Logged (never shown) the way every API error is.
    let _ = error.into_response();
    html(state, status, template::notice_page(lang, gone))
}

fn html(state: &AppState, status: StatusCode, body: String) -> Response {
    (status, page_headers(&state.checkout), body).into_response()
}
