//! `GET /v1/audit/head` (admin): the log's head, signed with the ledger's audit key, to be
//! kept where the database role cannot rewrite it (`payledger verify --anchor`).

use axum::extract::State;
use axum::Json;

use super::extract::Caller;
use crate::audit::anchor::SignedHead;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/v1/audit/head",
    operation_id = "get_audit_head",
    tag = "audit",
    summary = "The log's head, signed with the audit key",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The head", body = SignedHead),
        (status = 401, description = "`auth.*`: no token or a bad one", body = ErrorBody),
        (status = 403, description = "`auth.forbidden`: not an admin", body = ErrorBody),
    )
)]
pub async fn head(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SignedHead>, ApiError> {
    caller.require_admin()?;
    let mut connection = state.store.read.acquire().await?;
    let (position, hash) = projections::chain::head_in(&mut connection).await?;
    let hash = hash
        .as_deref()
        .and_then(projections::chain::as_hash)
        .ok_or_else(|| ApiError::internal(format!("the head at {position} is not linked")))?;
    let key = state.audit_key.as_deref();
    Ok(Json(SignedHead::new(
        position,
        &hash,
        chrono::Utc::now(),
        key,
    )))
}
