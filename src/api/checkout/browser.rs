//! What the checkout page's script calls, authorised by the link's secret in the path: place
//! an order (a code) through the session, follow one of its orders by the long-poll, and
//! fetch its QR code. Nothing else is reachable with a secret.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::client_ip::PeerAddr;
use crate::api::extract::{AppJson, AppPath, AppQuery};
use crate::api::orders::{client_ip, long_poll, order_entry, parse_order_id, PollParams};
use crate::api::request::request_id;
use crate::checkout::page_path;
use crate::checkout::{self, Choice};
use crate::error::{ApiError, ErrorBody};
use crate::ledger::Placed;
use crate::process::order_cache::CachedOrder;
use crate::state::{AppState, READ_YOUR_WRITES_WAIT};
use crate::store::{Actor, EventMetadata, Source};

/// `POST /checkout/{secret}/orders`: the page's choice where the session leaves one open.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCode {
    /// Required when the checkout leaves the plan open.
    plan_id: Option<String>,
    /// Required when the checkout leaves the channel open.
    channel: Option<String>,
}

/// An order as the page shows it: amounts already in yuan, the code's image when payable.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageOrder {
    id: String,
    status: String,
    plan_id: String,
    plan_name: String,
    channel: String,
    /// The amount for display, in yuan with two decimals ("99.00"): exact text, not a number.
    amount_yuan: String,
    /// ISO 4217 code, e.g. `CNY`.
    currency: String,
    #[schema(required = true)]
    expires_at: Option<String>,
    /// The log position the page long-polls after.
    position: i64,
    /// The QR code image, while the order can be paid.
    #[schema(required = true)]
    qr_url: Option<String>,
    /// With the in-process sandbox, the page the code leads to, so a desktop browser can
    /// pay without a phone. Never set for a real gateway's code.
    #[schema(required = true)]
    sandbox_pay_url: Option<String>,
    /// When the membership it bought ends, once paid.
    #[schema(required = true)]
    membership_ends_at: Option<String>,
}

#[utoipa::path(
    post,
    path = "/checkout/{secret}/orders",
    operation_id = "place_checkout_order",
    tag = "checkout",
    summary = "The checkout page places an order (a new code) through its link",
    description = "Authorised by the link's secret in the path, not by a token.",
    params(("secret" = String, Path, description = "The checkout link's secret")),
    request_body = NewCode,
    security(()),
    responses(
        (status = 201, description = "The order as the page shows it", body = PageOrder),
        (status = 404, description = "`checkout.session_not_found`, `checkout.session_expired`", body = ErrorBody),
        (status = 409, description = "`checkout.too_many_orders`, `order.too_many_open`", body = ErrorBody),
        (status = 422, description = "`checkout.plan_required`, `checkout.channel_required`, `checkout.not_this_checkout`, `plan.unknown`, `channel.unknown`", body = ErrorBody),
        (status = 429, description = "`order.rate_limited`", body = ErrorBody),
    )
)]
pub async fn place(
    State(state): State<AppState>,
    AppPath(secret): AppPath<String>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    AppJson(body): AppJson<NewCode>,
) -> Result<Response, ApiError> {
    let choice = Choice {
        plan_id: body.plan_id,
        channel: body.channel,
    };
    let metadata = |session: &checkout::Session| buyer_metadata(&headers, session);
    let client_ip = client_ip(&state, peer, &headers);
    let placed = checkout::order_through(&state, &secret, choice, client_ip, metadata).await?;
    let order_id = match placed {
        Placed::New { order_id, position } => {
            state.views.wait_for(position, READ_YOUR_WRITES_WAIT).await;
            order_id
        }
        Placed::Replayed { order_id } | Placed::AlreadyOpen { order_id } => order_id,
    };
    let entry = order_entry(&state, &order_id).await?;
    let body = Json(page_order(&state, &secret, &entry));
    Ok((StatusCode::CREATED, body).into_response())
}

/// The buyer acts as the session's user: the link is the merchant's word that they are.
fn buyer_metadata(headers: &HeaderMap, session: &checkout::Session) -> EventMetadata {
    EventMetadata {
        request_id: request_id(headers),
        actor: Actor::User(session.user_id.clone()),
        source: Source::Api,
        gateway_event_id: None,
        recorded_at: Utc::now(),
    }
}

#[utoipa::path(
    get,
    path = "/checkout/{secret}/orders/{order}",
    operation_id = "follow_checkout_order",
    tag = "checkout",
    summary = "The checkout page follows one of its orders (the long poll by position)",
    description = "Authorised by the link's secret in the path, not by a token.",
    params(("secret" = String, Path, description = "The checkout link's secret"), ("order" = String, Path, description = "An order id (a UUID) of this checkout"), crate::api::orders::PollParams),
    security(()),
    responses(
        (status = 200, description = "The order as the page shows it", body = PageOrder),
        (status = 304, description = "Nothing changed after `after` within `wait`"),
        (status = 404, description = "`order.not_found`, `checkout.session_not_found`, `checkout.session_expired`", body = ErrorBody),
    )
)]
pub async fn follow(
    State(state): State<AppState>,
    AppPath((secret, id)): AppPath<(String, String)>,
    AppQuery(params): AppQuery<PollParams>,
) -> Result<Response, ApiError> {
    let order_id = parse_order_id(&id)?;
    checkout::visible_order(&state, &secret, &order_id).await?;
    match long_poll(&state, &order_id, &params, &|_: &CachedOrder| true).await? {
        Some(entry) => Ok(Json(page_order(&state, &secret, &entry)).into_response()),
        None => Ok(StatusCode::NOT_MODIFIED.into_response()),
    }
}

#[utoipa::path(
    get,
    path = "/checkout/{secret}/orders/{order}/qr.svg",
    operation_id = "get_checkout_order_qr_svg",
    tag = "checkout",
    summary = "The QR code of one of the checkout's pending orders",
    params(("secret" = String, Path, description = "The checkout link's secret"), ("order" = String, Path, description = "An order id (a UUID) of this checkout")),
    security(()),
    responses(
        (status = 200, description = "The QR code (not cached)", body = String, content_type = "image/svg+xml"),
        (status = 404, description = "`order.not_found`, `checkout.session_not_found`, `checkout.session_expired`", body = ErrorBody),
        (status = 409, description = "`order.not_payable`", body = ErrorBody),
    )
)]
pub async fn qr_svg(
    State(state): State<AppState>,
    AppPath((secret, id)): AppPath<(String, String)>,
) -> Result<Response, ApiError> {
    let order_id = parse_order_id(&id)?;
    checkout::visible_order(&state, &secret, &order_id).await?;
    let entry = order_entry(&state, &order_id).await?;
    crate::api::qr::svg_response(&entry.row)
}

fn page_order(state: &AppState, secret: &str, entry: &CachedOrder) -> PageOrder {
    let row = &entry.row;
    let payable = row.status == "pending" && row.qr_code.is_some();
    let sandbox = format!("{}{}/", state.public_url, sandbox::MOUNT_PATH);
    PageOrder {
        id: row.order_id.clone(),
        status: row.status.clone(),
        plan_id: row.plan_id.clone(),
        plan_name: row.plan_name.clone(),
        channel: row.channel.clone(),
        amount_yuan: super::yuan(row.amount_minor),
        currency: row.currency.clone(),
        expires_at: row.expires_at.clone(),
        position: row.last_position,
        qr_url: payable.then(|| format!("{}/orders/{}/qr.svg", page_path(secret), row.order_id)),
        sandbox_pay_url: row
            .qr_code
            .clone()
            .filter(|code| payable && code.starts_with(&sandbox)),
        membership_ends_at: entry
            .membership
            .as_ref()
            .filter(|membership| membership.status == "active")
            .map(|membership| membership.ends_at.clone()),
    }
}
