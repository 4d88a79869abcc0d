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
    let movements = projections::transaction_history::totals_by_kind(
        &state.store.read,
        &projections::Tables::live(),
    )
    .await?;
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
    ) + &state.metrics.render()
        + &money_movements(&movements);
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}

/// Money movements by kind (payments, refunds, mismatched, late and duplicate payments),
/// derived from the transaction-history view: counts and sums in minor units.
fn money_movements(movements: &[(String, i64, i64)]) -> String {
    let mut text = String::from(
        "# HELP payledger_money_movements_total Money movements recorded, by kind.\n\
         # TYPE payledger_money_movements_total counter\n",
    );
    for (kind, count, _) in movements {
        text.push_str(&format!(
            "payledger_money_movements_total{{kind=\"{kind}\"}} {count}\n"
        ));
    }
    text.push_str(
        "# HELP payledger_money_movements_minor_total Sum of money movements in minor units (fen), by kind.\n\
         # TYPE payledger_money_movements_minor_total counter\n",
    );
    for (kind, _, sum) in movements {
        text.push_str(&format!(
            "payledger_money_movements_minor_total{{kind=\"{kind}\"}} {sum}\n"
        ));
    }
    text
}
