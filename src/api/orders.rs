//! Orders: create one for a plan (a QR code to pay), poll it, read its history.

use std::time::Duration;

use aggregates::{Channel, OrderId, PlanId, UserId};
use axum::extract::State;
use axum::http::header::{ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use cqrs_es::Aggregate;
use projections::order_status::OrderStatusRow;
use projections::Tables;
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{AppJson, AppPath, AppQuery, Caller};
use super::request::{api_metadata, position_header};
use crate::error::ApiError;
use crate::ledger::{self, IdempotencyKey, LedgerError, PlaceOrder, Placed};
use crate::process::order_cache::CachedOrder;
use crate::state::{AppState, READ_YOUR_WRITES_WAIT};

/// The longest a poll may wait for a change.
pub const LONG_POLL_WAIT_MAX_SECONDS: u64 = 30;

/// `POST /v1/orders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    plan_id: String,
    channel: String,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    AppJson(body): AppJson<CreateOrder>,
) -> Result<Response, ApiError> {
    let request = PlaceOrder {
        plan_id: PlanId::parse(&body.plan_id).map_err(|_| LedgerError::UnknownPlan)?,
        channel: body.channel.parse::<Channel>().map_err(|_| {
            ApiError::invalid("channel.unknown", "channel must be alipay_qr or wx_pub_qr")
        })?,
        user_id: UserId::parse(&caller.0.user_id).map_err(|_| LedgerError::InvalidUser)?,
        client_ip: client_ip(&headers),
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
        Json(order_json(&entry)),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollParams {
    after: Option<i64>,
    wait: Option<u64>,
}

pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<String>,
    AppQuery(params): AppQuery<PollParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let order_id = parse_order_id(&id)?;
    let mut entry = visible_entry(&state, &caller, &order_id).await?;
    if let (Some(after), Some(wait)) = (params.after, params.wait) {
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(wait.min(LONG_POLL_WAIT_MAX_SECONDS));
        while entry.row.last_position <= after {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(StatusCode::NOT_MODIFIED.into_response());
            }
            let seen = state.views.position().max(after);
            state.views.wait_past(seen, deadline - now).await;
            entry = visible_entry(&state, &caller, &order_id).await?;
        }
    }
    let body = order_json(&entry);
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

pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<Json<Value>, ApiError> {
    let order_id = parse_order_id(&id)?;
    visible_order(&state, &caller, &order_id).await?;
    let events =
        projections::log::read_stream(&state.store.read, aggregates::Order::TYPE, &order_id)
            .await?;
    let events: Vec<Value> = events
        .into_iter()
        .map(|event| {
            json!({
                "position": event.position,
                "sequence": event.sequence,
                "type": event.event_type,
                "version": event.event_version,
                "payload": event.payload,
                "metadata": event.metadata,
                "recorded_at": event.recorded_at,
            })
        })
        .collect();
    Ok(Json(json!({ "order_id": order_id, "events": events })))
}

/// The payer's address for the gateway's risk checks: the first proxy hop when one is named,
/// else loopback (the gateway requires the field).
fn client_ip(headers: &HeaderMap) -> String {
    headers
        .get("x-forwarded-for")
        .or_else(|| headers.get("x-real-ip"))
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .and_then(|first| first.trim().parse::<std::net::IpAddr>().ok())
        .map_or_else(|| "127.0.0.1".to_owned(), |ip| ip.to_string())
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
    match load_order(state, order_id).await? {
        Some(entry) if caller.may_see(&entry.row.user_id) => Ok(entry),
        _ => Err(ApiError::not_found("order.not_found", "no such order")),
    }
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
) -> Result<Option<Value>, ApiError> {
    Ok(load_order(state, order_id)
        .await?
        .map(|entry| order_json(&entry)))
}

/// The part of the ETag that follows the membership the order bought: its last change (an
/// extension, a revocation, its expiry) changes the order's answer too.
fn membership_marker(entry: &CachedOrder) -> String {
    entry.membership.as_ref().map_or_else(
        || "none".to_owned(),
        |membership| membership.last_position.to_string(),
    )
}

/// The polling endpoint's body.
fn order_json(entry: &CachedOrder) -> Value {
    let row = &entry.row;
    let membership = entry.membership.as_ref().map_or(Value::Null, |current| {
        let now = projections::schema::timestamp(&Utc::now());
        json!({
            "tier": current.tier,
            "ends_at": current.ends_at,
            "active": current.status == "active" && current.ends_at > now,
        })
    });
    json!({
        "id": row.order_id,
        "status": row.status,
        "plan_id": row.plan_id,
        "channel": row.channel,
        "amount": row.amount_minor,
        "currency": row.currency,
        "refunded_amount": row.refunded_minor,
        "refund_pending_amount": row.refund_pending_minor,
        "paid_at": row.paid_at,
        "expires_at": row.expires_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "qr_code": if row.status == "pending" { row.qr_code.clone() } else { None },
        "needs_review": row.needs_review,
        "needs_refund_amount": row.needs_refund_minor,
        "membership": membership,
    })
}
