//! Liveness (including the database: an instance that cannot record payments should not get
//! traffic) and Prometheus metrics derived from the log and the views.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::AppState;

pub async fn healthz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if state.store.ping().await {
        Ok(Json(json!({
            "status": "ok",
            "database": state.store.kind(),
            "views_position": state.views.position(),
        })))
    } else {
        Err(ApiError::Unavailable {
            code: "service.database_unavailable",
            message: "the database does not answer".to_owned(),
        })
    }
}

pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let head = projections::log::head(&state.store.read).await?;
    let views = state.views.position();
    let body = format!(
        "# HELP payledger_log_head_position Highest global position in the event log.\n\
         # TYPE payledger_log_head_position gauge\n\
         payledger_log_head_position {head}\n\
         # HELP payledger_views_position Position up to which the read models are exact.\n\
         # TYPE payledger_views_position gauge\n\
         payledger_views_position {views}\n\
         # HELP payledger_views_lag_events Events appended but not yet in the read models.\n\
         # TYPE payledger_views_lag_events gauge\n\
         payledger_views_lag_events {lag}\n",
        lag = (head - views).max(0)
    ) + &state.metrics.render();
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}
