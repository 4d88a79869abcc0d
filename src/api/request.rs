//! Per-request facts every command needs: a request id for the audit trail, the caller as
//! an actor, and the position header commands answer with.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chrono::Utc;

use crate::auth::Principal;
use crate::store::{Actor, EventMetadata, Source};

/// The header carrying the log position a command committed at, or a view reflects.
pub const POSITION_HEADER: HeaderName = HeaderName::from_static("x-ledger-position");
const REQUEST_ID_HEADER: &str = "x-request-id";
const REQUEST_ID_MAX_LEN: usize = 64;

/// The caller's request id when it is sane, else a fresh one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= REQUEST_ID_MAX_LEN
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), ToOwned::to_owned)
}

/// Metadata for events caused by an API call of `caller`.
pub fn api_metadata(headers: &HeaderMap, caller: &Principal) -> EventMetadata {
    let actor = if caller.is_admin() {
        Actor::Admin(caller.user_id.clone())
    } else {
        Actor::User(caller.user_id.clone())
    };
    EventMetadata {
        request_id: request_id(headers),
        actor,
        source: Source::Api,
        gateway_event_id: None,
        recorded_at: Utc::now(),
    }
}

pub fn position_header(position: i64) -> (HeaderName, HeaderValue) {
    (POSITION_HEADER, HeaderValue::from(position))
}
