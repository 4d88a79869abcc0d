//! Liveness (including the database: an instance that cannot record payments should not get
//! traffic) and Prometheus metrics derived from the log and the views. The metrics tell how
//! much money moved, so they are for operators only: an admin token or the metrics token.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use crate::auth;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Amounts are summed in two parts, quotient and remainder by this, so that no SQL sum can
/// overflow a 64-bit integer before about a billion movements of the largest amount; the
/// parts are put back together in 128 bits.
const SUM_SPLIT: i64 = 1_000_000_000;

/// `GET /healthz` when the instance and its database are up.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` (a down database is a 503 error instead).
    #[schema(example = "ok")]
    status: &'static str,
    /// The store this instance runs on: `postgres` or `sqlite`.
    #[schema(example = "postgres")]
    database: &'static str,
    /// The log position up to which the read models are exact.
    views_position: i64,
}

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    summary = "Liveness, including the database",
    security(()),
    responses(
        (status = 200, description = "Up", body = Health),
        (status = 503, description = "`service.database_unavailable`: the database does not answer", body = ErrorBody),
    )
)]
pub async fn healthz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    if state.store.ping().await {
        Ok(Json(Health {
            status: "ok",
            database: state.store.kind(),
            views_position: state.views.position(),
        }))
    } else {
        Err(ApiError::Unavailable {
            code: "service.database_unavailable",
            message: "the database does not answer".to_owned(),
        })
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "For operators only (the metrics tell how much money moved): an admin token, or \
        the metrics token when `PAYLEDGER_METRICS_TOKEN` is set. Amounts are in minor units (fen).",
    security(("bearer" = []), ("metrics_token" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "`auth.*`: no token, or neither a valid admin token nor the metrics token", body = ErrorBody),
        (status = 403, description = "`auth.forbidden`: a user token", body = ErrorBody),
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    auth::authorize_metrics(&headers, &state.tokens)?;
    let head = projections::log::head(&state.store.read).await?;
    let movements = totals_by_kind(&state).await?;
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
        lag = head.saturating_sub(views).max(0)
    ) + &state.metrics.render()
        + &money_movements(&movements);
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}

/// Money movements by kind (payments, refunds, mismatched, late and duplicate payments),
/// derived from the transaction-history view: counts and sums in minor units.
fn money_movements(movements: &[(String, i64, i128)]) -> String {
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

/// Count and sum of every kind of money movement, read from the transaction-history view. The
/// sum cannot overflow: see [`SUM_SPLIT`].
async fn totals_by_kind(state: &AppState) -> Result<Vec<(String, i64, i128)>, ApiError> {
    let sql = format!(
        "SELECT kind, CAST(count(*) AS BIGINT) AS n, \
         CAST(coalesce(sum(amount_minor / {SUM_SPLIT}), 0) AS BIGINT) AS high, \
         CAST(coalesce(sum(amount_minor % {SUM_SPLIT}), 0) AS BIGINT) AS low \
         FROM {t} GROUP BY kind ORDER BY kind",
        t = projections::Tables::live().transaction_history
    );
    let rows = sqlx::query(&sql).fetch_all(&state.store.read).await?;
    rows.iter()
        .map(|row| {
            let high: i64 = row.try_get("high")?;
            let low: i64 = row.try_get("low")?;
            let total = i128::from(high)
                .saturating_mul(i128::from(SUM_SPLIT))
                .saturating_add(i128::from(low));
            Ok((row.try_get("kind")?, row.try_get("n")?, total))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(ApiError::from)
}
