//! Orders: create one for a plan (a QR code to pay), poll it, read its history.

use std::collections::HashMap;
use std::time::Duration;

use aggregates::{Channel, OrderId, PlanId, UserId};
use axum::extract::State;
use axum::http::header::{ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use cqrs_es::Aggregate;
use projections::order_status::OrderStatusRow;
use projections::Tables;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::client_ip::PeerAddr;
use super::extract::{AppJson, AppPath, AppQuery, Caller};
use super::request::{api_metadata, position_header};
use crate::error::{ApiError, ErrorBody};
use crate::ledger::{self, IdempotencyKey, LedgerError, PlaceOrder, Placed};
use crate::process::order_cache::CachedOrder;
use crate::state::{AppState, READ_YOUR_WRITES_WAIT};

/// The longest a poll may wait for a change.
pub const LONG_POLL_WAIT_MAX_SECONDS: u64 = 30;

/// `POST /v1/orders`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// A purchasable plan of `GET /v1/plans`.
    #[schema(example = "pro-monthly")]
    plan_id: String,
    /// `alipay_qr` or `wx_pub_qr`.
    #[schema(example = "alipay_qr")]
    channel: String,
}

#[utoipa::path(
    post,
    path = "/v1/orders",
    operation_id = "create_order",
    tag = "orders",
    summary = "Create an order for a plan",
    description = "Answers the pending order with its QR code and expiry. Honours `Idempotency-Key`: \
        a retried request answers the same order. The answer's `X-Ledger-Position` header is the \
        log position the order was written at (for the long poll).",
    request_body = CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create answer the same order")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new (or, for a retried key, the same) order", body = OrderBody,
            headers(("X-Ledger-Position" = i64, description = "The log position the answer reflects"))),
        (status = 200, description = "The caller already holds as many open orders as allowed, one of them for this plan and channel: that order, still payable", body = OrderBody,
            headers(("X-Ledger-Position" = i64, description = "The log position the answer reflects"))),
        (status = 400, description = "`request.malformed_json`, `idempotency.malformed_key`", body = ErrorBody),
        (status = 401, description = "`auth.*`: no token or a bad one", body = ErrorBody),
        (status = 409, description = "`order.too_many_open`, `idempotency.in_progress`", body = ErrorBody),
        (status = 415, description = "`request.unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`plan.unknown`, `channel.unknown`, `user.invalid`, `idempotency.key_reused`, `request.invalid_body`", body = ErrorBody),
        (status = 429, description = "`order.rate_limited`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 502, description = "`gateway.rejected`, `gateway.authentication`, `gateway.upstream_error`", body = ErrorBody),
        (status = 503, description = "`gateway.unreachable`, `service.database_unavailable`", body = ErrorBody),
        (status = 504, description = "`gateway.timeout`", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    AppJson(body): AppJson<CreateOrder>,
) -> Result<Response, ApiError> {
    let request = PlaceOrder {
        plan_id: PlanId::parse(&body.plan_id).map_err(|_| LedgerError::UnknownPlan)?,
        channel: body.channel.parse::<Channel>().map_err(|_| {
            ApiError::invalid("channel.unknown", "channel must be alipay_qr or wx_pub_qr")
        })?,
        user_id: UserId::parse(&caller.0.user_id).map_err(|_| LedgerError::InvalidUser)?,
        client_ip: client_ip(&state, peer, &headers),
        idempotency_key: idempotency_key(&headers)?,
        metadata: api_metadata(&headers, &caller.0),
    };
    match ledger::place_order(&state, request).await? {
        Placed::New { order_id, position } => {
            respond_with_order(&state, &order_id, Some(position), StatusCode::CREATED).await
        }
        Placed::Replayed { order_id } => {
            respond_with_order(&state, &order_id, None, StatusCode::CREATED).await
        }
        // Nothing new was created: the open order is answered as it stands.
        Placed::AlreadyOpen { order_id } => {
            respond_with_order(&state, &order_id, None, StatusCode::OK).await
        }
    }
}

/// The request's `Idempotency-Key`, if it sent one.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|value| {
            value
                .to_str()
                .map_err(|_| LedgerError::MalformedIdempotencyKey)
                .and_then(IdempotencyKey::parse)
        })
        .transpose()
        .map_err(ApiError::from)
}

/// Answers with the order as the views show it once they include `committed` (the position
/// this request's own last write committed at); a replayed request, which wrote nothing, waits
/// for the order's last event.
async fn respond_with_order(
    state: &AppState,
    order_id: &str,
    committed: Option<i64>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let position = match committed {
        Some(position) => position,
        None => {
            projections::log::stream_head(&state.store.read, aggregates::Order::TYPE, order_id)
                .await?
        }
    };
    state.views.wait_for(position, READ_YOUR_WRITES_WAIT).await;
    // A replayed idempotent request may arrive while the first is still being decided.
    let entry = load_order(state, order_id)
        .await?
        .ok_or(LedgerError::IdempotencyInProgress)?;
    Ok((
        status,
        [position_header(position)],
        Json(OrderBody::of(&entry)),
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PollParams {
    /// The log position the caller has seen (an `X-Ledger-Position`); with `wait`, answer
    /// once the order changes after it.
    after: Option<i64>,
    /// Seconds to wait for a change after `after`, at most 30; 304 when none came.
    wait: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    operation_id = "get_order",
    tag = "orders",
    summary = "The order, or a long poll for its next change",
    params(("id" = String, Path, description = "The order id (a UUID)"), PollParams,
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of an earlier answer")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order", body = OrderBody, headers(
            ("ETag" = String, description = "Changes whenever the answer does; send it as `If-None-Match`"),
            ("X-Ledger-Position" = i64, description = "The order's last log position: the `after` of the next long poll"))),
        (status = 304, description = "Unchanged: the `If-None-Match` ETag matches, or nothing changed after `after` within `wait`"),
        (status = 400, description = "`request.malformed_query`", body = ErrorBody),
        (status = 401, description = "`auth.*`: no token or a bad one", body = ErrorBody),
        (status = 404, description = "`order.not_found`: no such order, or not the caller's", body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<String>,
    AppQuery(params): AppQuery<PollParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let order_id = parse_order_id(&id)?;
    let may_see = |entry: &CachedOrder| caller.may_see(&entry.row.user_id);
    let Some(entry) = long_poll(&state, &order_id, &params, &may_see).await? else {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    };
    let body = OrderBody::of(&entry);
    let etag = format!(
        "\"{}-{}\"",
        entry.row.last_position,
        membership_marker(&entry)
    );
    if headers
        .get(IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value == etag)
    {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag)]).into_response());
    }
    Ok((
        StatusCode::OK,
        [(ETAG, etag)],
        [position_header(entry.row.last_position)],
        Json(body),
    )
        .into_response())
}

/// `GET /v1/orders/{id}/events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderEvents {
    order_id: String,
    /// Oldest first.
    events: Vec<OrderEvent>,
}

/// One event of the order's log stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderEvent {
    /// Global log position.
    position: i64,
    /// Position within the order's stream, from 1.
    sequence: i64,
    /// The event's name, e.g. `OrderPlaced`, `PaymentConfirmed`.
    #[serde(rename = "type")]
    event_type: String,
    version: String,
    /// The event as recorded; amounts in it are integer minor units with their currency.
    payload: Value,
    /// Who or what caused it (`actor`, `source`, `request_id`, ...); a customer sees `admin`
    /// where staff acted, not which member of staff.
    metadata: HashMap<String, String>,
    recorded_at: String,
}

#[utoipa::path(
    get,
    path = "/v1/orders/{id}/events",
    operation_id = "list_order_events",
    tag = "orders",
    summary = "The order's events with metadata, oldest first",
    params(("id" = String, Path, description = "The order id (a UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order's events", body = OrderEvents),
        (status = 401, description = "`auth.*`: no token or a bad one", body = ErrorBody),
        (status = 404, description = "`order.not_found`: no such order, or not the caller's", body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<Json<OrderEvents>, ApiError> {
    let order_id = parse_order_id(&id)?;
    visible_order(&state, &caller, &order_id).await?;
    let events =
        projections::log::read_stream(&state.store.read, aggregates::Order::TYPE, &order_id)
            .await?;
    let staff_view = caller.0.is_admin();
    let events = events
        .into_iter()
        .map(|event| OrderEvent {
            position: event.position,
            sequence: event.sequence,
            event_type: event.event_type,
            version: event.event_version,
            payload: event.payload,
            metadata: if staff_view {
                event.metadata
            } else {
                without_staff_ids(event.metadata)
            },
            recorded_at: event.recorded_at,
        })
        .collect();
    Ok(Json(OrderEvents { order_id, events }))
}

/// A customer sees that staff acted, not which member of staff: `admin:<id>` becomes `admin`.
fn without_staff_ids(mut metadata: HashMap<String, String>) -> HashMap<String, String> {
    if let Some(actor) = metadata.get_mut(crate::store::metadata_keys::ACTOR) {
        if actor.starts_with("admin:") {
            "admin".clone_into(actor);
        }
    }
    metadata
}

/// The payer's address for the gateway's risk checks (the gateway requires the field).
pub(super) fn client_ip(
    state: &AppState,
    peer: Option<Extension<PeerAddr>>,
    headers: &HeaderMap,
) -> String {
    let peer = peer.map_or(std::net::Ipv4Addr::LOCALHOST.into(), |Extension(peer)| {
        peer.0.ip()
    });
    state.trusted_proxies.client_ip(peer, headers).to_string()
}

/// Ids are UUIDs; anything else (including path tricks) is simply not an order.
pub(super) fn parse_order_id(id: &str) -> Result<String, ApiError> {
    id.parse::<OrderId>()
        .map(|order_id| order_id.to_string())
        .map_err(|_| ApiError::not_found("order.not_found", "no such order"))
}

/// The order as the views show it when the caller may see it; another user's order is "not
/// found". Served from memory when the cache has it.
pub(super) async fn visible_order(
    state: &AppState,
    caller: &Caller,
    order_id: &str,
) -> Result<OrderStatusRow, ApiError> {
    Ok(visible_entry(state, caller, order_id).await?.row)
}

async fn visible_entry(
    state: &AppState,
    caller: &Caller,
    order_id: &str,
) -> Result<CachedOrder, ApiError> {
    visible_to(state, order_id, &|entry: &CachedOrder| {
        caller.may_see(&entry.row.user_id)
    })
    .await
}

/// The order when `may_see` allows it; any other is "not found".
async fn visible_to(
    state: &AppState,
    order_id: &str,
    may_see: &impl Fn(&CachedOrder) -> bool,
) -> Result<CachedOrder, ApiError> {
    match load_order(state, order_id).await? {
        Some(entry) if may_see(&entry) => Ok(entry),
        _ => Err(ApiError::not_found("order.not_found", "no such order")),
    }
}

/// The order, for a caller whose right to see it was checked otherwise (a checkout link).
pub(super) async fn order_entry(state: &AppState, order_id: &str) -> Result<CachedOrder, ApiError> {
    visible_to(state, order_id, &|_: &CachedOrder| true).await
}

/// The long-poll by position: with `after` and `wait`, answers once the order has an event
/// past `after` (`None` when none came within the wait, at most
/// [`LONG_POLL_WAIT_MAX_SECONDS`]); without them, at once. A page that has seen position N
/// learns of the payment the moment it is committed, never shows a stale QR code after it.
pub(super) async fn long_poll(
    state: &AppState,
    order_id: &str,
    params: &PollParams,
    may_see: &impl Fn(&CachedOrder) -> bool,
) -> Result<Option<CachedOrder>, ApiError> {
    let mut entry = visible_to(state, order_id, may_see).await?;
    if let (Some(after), Some(wait)) = (params.after, params.wait) {
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(wait.min(LONG_POLL_WAIT_MAX_SECONDS));
        while entry.row.last_position <= after {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let seen = state.views.position().max(after);
            state.views.wait_past(seen, deadline - now).await;
            entry = visible_to(state, order_id, may_see).await?;
        }
    }
    Ok(Some(entry))
}

/// `GET /v1/orders/{id}/qr.svg`: the pending order's payment credential as an SVG QR code.
#[utoipa::path(
    get,
    path = "/v1/orders/{id}/qr.svg",
    operation_id = "get_order_qr_svg",
    tag = "orders",
    summary = "The pending order's QR code as an SVG image",
    params(("id" = String, Path, description = "The order id (a UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The QR code (not cached)", body = String, content_type = "image/svg+xml"),
        (status = 401, description = "`auth.*`: no token or a bad one", body = ErrorBody),
        (status = 404, description = "`order.not_found`: no such order, or not the caller's", body = ErrorBody),
        (status = 409, description = "`order.not_payable`: the order is no longer pending", body = ErrorBody),
    )
)]
pub async fn qr_svg(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<Response, ApiError> {
    let order_id = parse_order_id(&id)?;
    let row = visible_order(&state, &caller, &order_id).await?;
    super::qr::svg_response(&row)
}

async fn load_order(state: &AppState, order_id: &str) -> Result<Option<CachedOrder>, ApiError> {
    let cache = state.views.cache();
    if let Some(entry) = cache.get(order_id) {
        return Ok(Some(entry));
    }
    let generation = cache.generation();
    let mut connection = state
        .store
        .read
        .acquire()
        .await
        .map_err(ApiError::internal)?;
    let Some(entry) =
        projections::order_view::load(&mut connection, &Tables::live(), order_id).await?
    else {
        return Ok(None);
    };
    cache.insert_if_current(generation, entry.clone());
    Ok(Some(entry))
}

/// The order as the polling endpoint shows it, for other readers (the merchant's events).
pub(crate) async fn order_data(
    state: &AppState,
    order_id: &str,
) -> Result<Option<OrderBody>, ApiError> {
    Ok(load_order(state, order_id)
        .await?
        .map(|entry| OrderBody::of(&entry)))
}

/// The part of the ETag that follows the membership the order bought: its last change (an
/// extension, a revocation, its expiry) changes the order's answer too.
fn membership_marker(entry: &CachedOrder) -> String {
    entry.membership.as_ref().map_or_else(
        || "none".to_owned(),
        |membership| membership.last_position.to_string(),
    )
}

/// An order as the API shows it: the polling endpoint's body. Every amount is an integer in
/// minor units of `currency` (fen for CNY), never a float.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrderBody {
    pub id: String,
    /// `created`, `pending`, `paid`, `partially_refunded`, `refunded`, `expired`, `failed` or
    /// `cancelled`.
    pub status: String,
    pub plan_id: String,
    /// `alipay_qr` or `wx_pub_qr`.
    pub channel: String,
    /// The price, in minor units of `currency` (fen).
    pub amount: i64,
    /// ISO 4217 code, e.g. `CNY`.
    pub currency: String,
    /// Refunded so far, in minor units.
    pub refunded_amount: i64,
    /// Asked back but not yet confirmed by the gateway, in minor units.
    pub refund_pending_amount: i64,
    /// RFC 3339, UTC; null until paid.
    #[schema(required = true)]
    pub paid_at: Option<String>,
    /// When the QR code stops being payable (RFC 3339, UTC).
    #[schema(required = true)]
    pub expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The payment credential, while the order can still be paid; else null.
    #[schema(required = true)]
    pub qr_code: Option<String>,
    /// Money arrived that is not a plain payment (wrong amount, late, a second charge).
    pub needs_review: bool,
    /// Late or duplicate money still owed back, in minor units.
    pub needs_refund_amount: i64,
    /// The buyer's membership, when this order bought a grant that still counts; else null.
    #[schema(required = true)]
    pub membership: Option<OrderMembership>,
}

/// The membership an order bought.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrderMembership {
    pub tier: String,
    pub ends_at: String,
    pub active: bool,
}

impl OrderBody {
    pub fn of(entry: &CachedOrder) -> Self {
        let row = &entry.row;
        let now = projections::schema::timestamp(&Utc::now());
        Self {
            id: row.order_id.clone(),
            status: row.status.clone(),
            plan_id: row.plan_id.clone(),
            channel: row.channel.clone(),
            amount: row.amount_minor,
            currency: row.currency.clone(),
            refunded_amount: row.refunded_minor,
            refund_pending_amount: row.refund_pending_minor,
            paid_at: row.paid_at.clone(),
            expires_at: row.expires_at.clone(),
            created_at: row.created_at.clone(),
            updated_at: row.updated_at.clone(),
            qr_code: (row.status == "pending")
                .then(|| row.qr_code.clone())
                .flatten(),
            needs_review: row.needs_review,
            needs_refund_amount: row.needs_refund_minor,
            membership: entry.membership.as_ref().map(|current| OrderMembership {
                tier: current.tier.clone(),
                ends_at: current.ends_at.clone(),
                active: current.status == "active" && current.ends_at > now,
            }),
        }
    }
}
