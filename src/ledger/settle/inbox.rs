//! The `gateway_events` inbox: one row per verified event with what became of it, so a
//! redelivery is answered from it and nothing a gateway told us is lost.

use aggregates::Order;
use chrono::Utc;
use cqrs_es::Aggregate;
use gateways::GatewayEvent;
use sqlx::{AnyConnection, AnyPool, Row};

use super::{Outcome, Settled, SettlementError};

/// An inbox row: a verified gateway event and what became of it.
#[derive(Clone)]
pub(super) struct InboxRow<'a> {
    pub(super) provider: &'a str,
    pub(super) event: &'a GatewayEvent,
    /// The body exactly as received: kept as bytes, never through a lossy conversion.
    pub(super) raw: &'a [u8],
    pub(super) order_id: Option<&'a str>,
    pub(super) outcome: Outcome,
    /// The log position of the last event it led to.
    pub(super) position: Option<i64>,
}

/// Upserts the event's row in the inbox. A redelivery counts a delivery; a final outcome is
/// never replaced (a deferred one is, once the event settles).
pub(super) async fn record(
    connection: &mut AnyConnection,
    inbox: &InboxRow<'_>,
) -> Result<(), sqlx::Error> {
    let now = projections::schema::timestamp(&Utc::now());
    sqlx::query(
        "INSERT INTO gateway_events (provider, event_id, event_type, order_id, outcome, body, \
         received_at, updated_at, deliveries, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1, $8) \
         ON CONFLICT (provider, event_id) DO UPDATE SET \
           deliveries = gateway_events.deliveries + 1, \
           outcome = CASE WHEN gateway_events.outcome IN ('deferred', 'received') THEN $5 \
                          ELSE gateway_events.outcome END, \
           order_id = coalesce(gateway_events.order_id, $4), \
           position = coalesce(gateway_events.position, $8), \
           updated_at = $7",
    )
    .bind(inbox.provider)
    .bind(inbox.event.event_id().to_string())
    .bind(inbox.event.event_type().to_owned())
    .bind(inbox.order_id.map(ToOwned::to_owned))
    .bind(inbox.outcome.as_str().to_owned())
    .bind(inbox.raw.to_vec())
    .bind(now)
    .bind(inbox.position)
    .execute(connection)
    .await?;
    Ok(())
}

/// The settlement of an event already recorded with a final outcome, from its inbox row.
pub(super) async fn already_settled(
    pool: &AnyPool,
    provider: &str,
    event_id: &str,
) -> Result<Option<Settled>, SettlementError> {
    let row = sqlx::query(
        "SELECT outcome, order_id, position FROM gateway_events \
         WHERE provider = $1 AND event_id = $2 AND outcome <> 'deferred'",
    )
    .bind(provider)
    .bind(event_id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let order_id: Option<String> = row.try_get("order_id")?;
    let position: Option<i64> = row.try_get("position")?;
    let position = match (position, &order_id) {
        (Some(position), _) => position,
        (None, Some(order_id)) => {
            projections::log::stream_head(pool, Order::TYPE, order_id).await?
        }
        (None, None) => 0,
    };
    Ok(Some(Settled {
        outcome: Outcome::Duplicate,
        order_id,
        position,
        events: Vec::new(),
    }))
}
