//! Settling verified gateway facts into the ledger: a confirmed charge becomes the order's
//! payment, a refund notice completes the refund. Webhooks and the reconciler both come here,
//! so money is recorded the same way whichever door it came through.
//!
//! Every verified event is kept in `gateway_events` with what became of it, in the same
//! transaction as the events it led to, before we answer: nothing a gateway told us is lost,
//! even when no order matches it.

mod evidence;
mod inbox;
mod membership;
mod outcome;
mod settled_events;
mod target;
mod transaction;

use aggregates::{GatewayEventId, Order, RefundId};
use chrono::Utc;
use cqrs_es::Aggregate;
use gateways::{GatewayEvent, QueryAnswer, RefundFacts, RefundState};
use projections::log::StoredEvent;

use crate::state::AppState;
use crate::store::{Actor, EventMetadata, Source};
use inbox::{already_settled, record, InboxRow};
use target::target_order;

pub use evidence::{Evidence, SUMMARY_PROTOCOL};
pub(crate) use membership::{legacy_grant, LegacyGrant};
pub use outcome::Outcome;
pub use settled_events::{Landed, SettledEvents};

/// The result of settling one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub outcome: Outcome,
    pub order_id: Option<String>,
    /// The order's stream head after settling (0 when no order).
    pub position: i64,
    /// What this settlement appended (the order's events, then the membership's).
    pub events: Vec<StoredEvent>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettlementError {
    #[error("recording the gateway event failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Log(#[from] projections::LogError),
    /// The command could not be appended (database down, conflicts exhausted): the gateway
    /// must deliver again.
    #[error("appending to the ledger failed: {0}")]
    Append(String),
}

impl Settled {
    /// Where the event landed, as remembered for its redeliveries.
    pub fn landed(&self) -> Landed {
        Landed {
            order_id: self.order_id.clone(),
            position: self.position,
        }
    }
}

/// Settles one verified event from `provider` (the name its gateway records, part of the
/// inbox key with the event id). `evidence` holds the body as received; it is kept with the
/// events it leads to.
///
/// One transaction per fact: the order's new events, the membership they activate or take
/// back, the views, and the inbox row with the event's outcome commit together. A redelivery
/// of an event already settled is answered from the inbox with one read and no write.
pub async fn settle(
    state: &AppState,
    provider: &str,
    event: &GatewayEvent,
    evidence: &Evidence<'_>,
    source: Source,
    request_id: &str,
) -> Result<Settled, SettlementError> {
    let raw = evidence.body;
    let event_id = event.event_id().to_string();
    if let Some(landed) = state.settled.get(provider, &event_id) {
        return Ok(Settled {
            outcome: Outcome::Duplicate,
            order_id: landed.order_id,
            position: landed.position,
            events: Vec::new(),
        });
    }
    if let Some(settled) = already_settled(&state.store.read, provider, &event_id).await? {
        state
            .settled
            .remember(provider, &event_id, settled.landed());
        return Ok(settled);
    }

    let target = target_order(state, event).await?;
    let Some((order_id, command)) = target else {
        let outcome = if matches!(event, GatewayEvent::Other { .. }) {
            Outcome::Ignored
        } else {
            Outcome::Unmatched
        };
        tracing::warn!(
            provider,
            event_id,
            outcome = outcome.as_str(),
            "gateway event matched no order"
        );
        let inbox = InboxRow {
            provider,
            event,
            raw,
            order_id: None,
            outcome,
            position: None,
        };
        record(&mut *state.store.read.acquire().await?, &inbox).await?;
        return Ok(Settled {
            outcome,
            order_id: None,
            position: 0,
            events: Vec::new(),
        });
    };

    let id = order_id.to_string();
    let metadata = EventMetadata {
        request_id: request_id.to_owned(),
        actor: Actor::Gateway,
        source,
        gateway_event_id: Some(event_id.clone()),
        recorded_at: Utc::now(),
    };
    let inbox = InboxRow {
        provider,
        event,
        raw,
        order_id: Some(&id),
        outcome: Outcome::Applied,
        position: None,
    };
    let (outcome, committed) =
        transaction::commit(state, &id, &command, &metadata, &inbox, evidence).await?;
    if committed.events.iter().any(|stored| {
        matches!(
            stored.event_type.as_str(),
            "PaymentAmountMismatch" | "LatePaymentReceived" | "DuplicatePaymentReceived"
        )
    }) {
        tracing::warn!(order_id = %id, "money needs review or refund");
    }
    tracing::info!(
        provider,
        event_id,
        event_type = event.event_type(),
        order_id = %id,
        outcome = outcome.as_str(),
        "gateway event settled"
    );
    let position = match committed.events.last() {
        Some(last) => last.position,
        None => projections::log::stream_head(&state.store.read, Order::TYPE, &id).await?,
    };
    let settled = Settled {
        outcome,
        order_id: Some(id),
        position,
        events: committed.events,
    };
    if outcome.acknowledged() {
        state
            .settled
            .remember(provider, &event_id, settled.landed());
    }
    Ok(settled)
}

/// The event id of a refund settled from the gateway's own answer (to our refund request or
/// a lookup) rather than from a notice: one per refund, so settling it again from another
/// answer is a duplicate.
pub fn answered_refund_event_id(facts: &RefundFacts) -> Option<GatewayEventId> {
    answered_refund_event_id_of(facts.refund_id?)
}

/// The event id [`answered_refund_event_id`] gives refund `refund_id`.
pub fn answered_refund_event_id_of(refund_id: RefundId) -> Option<GatewayEventId> {
    GatewayEventId::parse(&format!(
        "{ANSWERED_REFUND_EVENT_PREFIX}{}",
        refund_id.as_uuid().simple()
    ))
    .ok()
}

const ANSWERED_REFUND_EVENT_PREFIX: &str = "evt_refund_";

/// Settles a refund the gateway answered final (`Succeeded` or `Failed`), as its notice would
/// have: some gateways (Alipay) finish a refund in the answer and send no notice we act on,
/// and a notice may never come. None for a refund still pending, or one not ours. `answer`
/// is the gateway's answer as received (to our refund request or to a lookup), kept as the
/// evidence, so that it can be verified again where the gateway signs its answers.
pub async fn settle_refund_answer(
    state: &AppState,
    provider: &str,
    refund_state: RefundState,
    facts: RefundFacts,
    answer: &QueryAnswer,
    source: Source,
    request_id: &str,
) -> Result<Option<Settled>, SettlementError> {
    let Some(event_id) = answered_refund_event_id(&facts) else {
        return Ok(None);
    };
    let evidence = Evidence::answer(answer);
    let event = match refund_state {
        RefundState::Pending => return Ok(None),
        RefundState::Succeeded => GatewayEvent::RefundSucceeded {
            event_id,
            refund: facts,
        },
        RefundState::Failed => GatewayEvent::RefundFailed {
            event_id,
            refund: facts,
        },
    };
    settle(state, provider, &event, &evidence, source, request_id)
        .await
        .map(Some)
}
