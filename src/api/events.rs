//! The merchant event feed (admin), for receivers that cannot take webhooks: the same events
//! the webhooks carry, in position order, with a long poll like the order endpoint's.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{AppQuery, Caller};
use super::orders::LONG_POLL_WAIT_MAX_SECONDS;
use crate::error::{ApiError, ErrorBody};
use crate::merchant::events::{self, MerchantEvent};
use crate::state::AppState;

/// Events per page when no `limit` is given, and at most.
pub const FEED_LIMIT_DEFAULT: i64 = 50;
pub const FEED_LIMIT_MAX: i64 = 200;
/// Log events read per query while filling a page.
const SCAN_BATCH: i64 = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// Events after this log position (default 0): the previous page's `next_after`.
    after: Option<i64>,
    /// Events per page, 1 to 200 (default 50).
    limit: Option<i64>,
    /// Seconds an empty answer may wait for the next event, at most 30.
    wait: Option<u64>,
}

/// A page of the merchant event feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Feed {
    events: Vec<MerchantEvent>,
    /// Pass as `after` for the next page: every position up to here has been looked at.
    next_after: i64,
}

#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "list_events",
    tag = "merchant events",
    summary = "The merchant events, in position order",
    params(FeedParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Events after `after`", body = Feed),
        (status = 400, description = "`request.malformed_query`", body = ErrorBody),
        (status = 401, description = "`auth.*`: no token or a bad one", body = ErrorBody),
        (status = 403, description = "`auth.forbidden`: not an admin", body = ErrorBody),
        (status = 422, description = "`feed.invalid_after`, `feed.invalid_limit`", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(params): AppQuery<FeedParams>,
) -> Result<Json<Feed>, ApiError> {
    caller.require_admin()?;
    let after = params.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid(
            "feed.invalid_after",
            "after must be 0 or more",
        ));
    }
    let limit = params.limit.unwrap_or(FEED_LIMIT_DEFAULT);
    if !(1..=FEED_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            "feed.invalid_limit",
            format!("limit must be from 1 to {FEED_LIMIT_MAX}"),
        ));
    }
    let wait = Duration::from_secs(params.wait.unwrap_or(0).min(LONG_POLL_WAIT_MAX_SECONDS));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (found, next_after) = page(&state, after, limit).await?;
        let now = tokio::time::Instant::now();
        if !found.is_empty() || now >= deadline {
            return Ok(Json(Feed {
                events: found,
                next_after,
            }));
        }
        state.views.wait_past(next_after, deadline - now).await;
    }
}

/// Up to `limit` merchant events after `after`, up to what the views include, and the last
/// position looked at.
async fn page(
    state: &AppState,
    after: i64,
    limit: i64,
) -> Result<(Vec<MerchantEvent>, i64), ApiError> {
    let up_to = state.views.position();
    let mut cursor = after;
    let mut found = Vec::new();
    while cursor < up_to {
        let batch =
            projections::log::read_range(&state.store.read, cursor, Some(up_to), SCAN_BATCH)
                .await?;
        if batch.is_empty() {
            break;
        }
        for event in &batch {
            cursor = event.position;
            if let Some((merchant_event, _)) = events::from_log(state, event).await? {
                found.push(merchant_event);
                if i64::try_from(found.len()).unwrap_or(i64::MAX) >= limit {
                    return Ok((found, cursor));
                }
            }
        }
    }
    Ok((found, cursor.max(after)))
}
