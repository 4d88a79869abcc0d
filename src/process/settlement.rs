//! Settling verified gateway facts into the ledger: a confirmed charge becomes the order's
//! payment, a refund notice completes the refund. Webhooks and the reconciler both come here,
//! so money is recorded the same way whichever door it came through.
//!
//! Every verified event is kept in `gateway_events` with what became of it, in the same
//! transaction as the events it led to, before we answer: nothing a gateway told us is lost,
//! even when no order matches it.

use aggregates::{
    GatewayEventId, GrantedPeriod, Order, OrderCommand, OrderError, OrderEvent, OrderId,
    OrderStatus, ReportedRefund, Subscription, SubscriptionCommand, SubscriptionError,
    SubscriptionEvent, UserId,
};
use chrono::Utc;
use cqrs_es::Aggregate;
use projections::log::StoredEvent;
use sqlx::{AnyConnection, AnyPool, Row};

use crate::process::settled_events::Landed;
use crate::state::AppState;
use crate::store::load::{self, Refusal};
use crate::store::{
    append, jitter, Actor, Appended, Attempt, EventMetadata, Source, Store, StreamAppend,
    COMMAND_RETRIES_MAX, RETRY_BACKOFF_INITIAL, RETRY_BACKOFF_MAX,
};
use gateways::{order_id_from_order_no, GatewayEvent, QueryAnswer, RefundFacts, RefundState};

impl Settled {
    /// Where the event landed, as remembered for its redeliveries.
    pub fn landed(&self) -> Landed {
        Landed {
            order_id: self.order_id.clone(),
            position: self.position,
        }
    }
}

/// What became of a gateway event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Appended to the order's log.
    Applied,
    /// Already in the log (a redelivery or replay): nothing new appended.
    Duplicate,
    /// No order of ours matches: kept for reconciliation.
    Unmatched,
    /// A type we do not act on: kept for audit.
    Ignored,
    /// The order is not ready for it yet (e.g. a refund notice before the refund was
    /// recorded): kept, and the gateway is asked to deliver it again later.
    Deferred,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Unmatched => "unmatched",
            Self::Ignored => "ignored",
            Self::Deferred => "deferred",
        }
    }

    /// Whether the gateway should consider the delivery done.
    pub fn acknowledged(self) -> bool {
        !matches!(self, Self::Deferred)
    }
}

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

/// What a gateway fact rests on, kept (append-only) with the events it leads to.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The exact bytes received.
    pub body: &'a [u8],
    /// `pingpp`, `alipay`, `wechatpay` for a verified webhook; one of
    /// [`gateways::answer_protocols`] for a gateway's answer to a query; [`SUMMARY_PROTOCOL`]
    /// for the ledger's summary of an answer.
    pub protocol: &'a str,
    /// The headers that carried the signature, as received.
    pub signature_headers: &'a [(String, String)],
    /// The verifying key's fingerprint; None: unsigned.
    pub key_fingerprint: Option<&'a str>,
}

/// The protocol recorded for facts learnt from a gateway's answer to a query: the body is the
/// ledger's summary of the answer, which nobody signed.
pub const SUMMARY_PROTOCOL: &str = "summary";

impl<'a> Evidence<'a> {
    /// Unsigned evidence: the ledger's summary of a gateway's answer.
    pub fn unsigned_summary(body: &'a [u8]) -> Self {
        Self {
            body,
            protocol: SUMMARY_PROTOCOL,
            signature_headers: &[],
            key_fingerprint: None,
        }
    }

    /// The gateway's own answer to a query, as received: signed (with the fingerprint of the
    /// key that verified it) where the gateway signs its answers, unsigned otherwise.
    pub fn answer(answer: &'a QueryAnswer) -> Self {
        Self {
            body: &answer.body,
            protocol: answer.protocol,
            signature_headers: &answer.signature_headers,
            key_fingerprint: answer.key_fingerprint.as_deref(),
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
    let lock = state.store.locks.lock_for(Order::TYPE, &id);
    let _turn = lock.lock().await;
    let mut backoff = RETRY_BACKOFF_INITIAL;
    let mut attempt = 0;
    let (outcome, committed) = loop {
        attempt += 1;
        let inbox = InboxRow {
            provider,
            event,
            raw,
            order_id: Some(&id),
            outcome: Outcome::Applied,
            position: None,
        };
        match settle_once(
            state,
            attempt,
            &id,
            command.clone(),
            &metadata,
            inbox,
            evidence,
        )
        .await
        {
            Ok(settled) => break settled,
            Err(Attempt::Conflict) if attempt < COMMAND_RETRIES_MAX => {
                tokio::time::sleep(backoff + jitter(backoff)).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            }
            Err(Attempt::Conflict) => {
                return Err(SettlementError::Append(
                    "other writers kept changing the order".to_owned(),
                ))
            }
            Err(Attempt::Refused(never)) => match never {},
            Err(Attempt::Failed(detail)) => return Err(SettlementError::Append(detail)),
        }
    };
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
    let refund_id = facts.refund_id?;
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
/// is the gateway's answer as received, kept as the evidence; without it (an answer to our
/// refund request, read for its state alone) the ledger's summary is kept, unsigned.
pub async fn settle_refund_answer(
    state: &AppState,
    provider: &str,
    refund_state: RefundState,
    facts: RefundFacts,
    answer: Option<&QueryAnswer>,
    source: Source,
    request_id: &str,
) -> Result<Option<Settled>, SettlementError> {
    let Some(event_id) = answered_refund_event_id(&facts) else {
        return Ok(None);
    };
    let raw = serde_json::json!({
        "object": "refund",
        "source": source.as_str(),
        "id": facts.gateway_refund_id.as_str(),
        "charge": facts.charge_id.as_str(),
        "refund_id": facts.refund_id.map(|id| id.to_string()),
        "amount": facts.amount.amount_minor(),
        "status": match refund_state {
            RefundState::Succeeded => "succeeded",
            RefundState::Failed => "failed",
            RefundState::Pending => "pending",
        },
        "failure_code": facts.failure_code,
    })
    .to_string();
    let evidence = match answer {
        Some(answer) => Evidence::answer(answer),
        None => Evidence::unsigned_summary(raw.as_bytes()),
    };
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

/// One attempt: load, decide for the order and the membership, append, record, commit.
async fn settle_once(
    state: &AppState,
    attempt: usize,
    order_id: &str,
    command: OrderCommand,
    metadata: &EventMetadata,
    mut inbox: InboxRow<'_>,
    evidence: &Evidence<'_>,
) -> Result<(Outcome, Appended), Attempt<std::convert::Infallible>> {
    let store = &state.store;
    let mut transaction = store.begin_decision(attempt).await?;
    let order = load::load::<Order>(&mut transaction, order_id).await?;
    let mut streams = Vec::new();
    inbox.outcome = match order.decide(order_id, command.clone()) {
        Err(Refusal::Domain(error)) => classify(&error),
        Err(Refusal::Encode(error)) => return Err(Attempt::Failed(error.to_string())),
        Ok(decision) if decision.append.events.is_empty() => Outcome::Duplicate,
        Ok(decision) => {
            let change = membership_change(
                &mut transaction,
                order_id,
                &order.state,
                &decision.after,
                &decision.events,
            )
            .await?;
            match change {
                Some(MembershipChange::Activated { granted, append }) => {
                    // The payment records the period it bought, in the same transaction as
                    // the activation: the order is what keeps each grant exactly once.
                    let decision = order
                        .decide(order_id, with_membership(command, granted))
                        .map_err(|_| {
                            Attempt::Failed("the order changed its decision".to_owned())
                        })?;
                    streams.push(decision.append);
                    streams.push(append);
                }
                Some(MembershipChange::Revoked { append }) => {
                    streams.push(decision.append);
                    streams.push(append);
                }
                None => streams.push(decision.append),
            }
            Outcome::Applied
        }
    };
    let appended = append::append(&mut transaction, store.dialect(), &streams, metadata).await?;
    inbox.position = appended.events.last().map(|event| event.position);
    record(&mut transaction, &inbox).await?;
    if let (Some(first), Some(last)) = (appended.events.first(), appended.events.last()) {
        keep_evidence(
            &mut transaction,
            &inbox,
            evidence,
            first.position,
            last.position,
        )
        .await?;
    }
    let orders = Store::order_views(&mut transaction, &appended).await?;
    transaction.commit().await?;
    store.published(&appended, orders);
    Ok((inbox.outcome, appended))
}

/// What an order's new events do to its buyer's membership.
enum MembershipChange {
    /// A confirmed payment granted `granted`.
    Activated {
        granted: GrantedPeriod,
        append: StreamAppend,
    },
    /// The refund that left the order fully refunded took its period back.
    Revoked { append: StreamAppend },
}

/// Decides the membership's side of an order's new events: a confirmed payment grants the
/// period the order bought; the refund that leaves the order fully refunded takes it back.
async fn membership_change(
    transaction: &mut AnyConnection,
    order_id: &str,
    before: &Order,
    after: &Order,
    events: &[OrderEvent],
) -> Result<Option<MembershipChange>, Attempt<std::convert::Infallible>> {
    let (Ok(order), Some(user_id)) = (order_id.parse::<OrderId>(), after.user_id()) else {
        return Ok(None);
    };
    let paid_at = events.iter().find_map(|event| match event {
        OrderEvent::PaymentConfirmed { paid_at, .. } => Some(*paid_at),
        _ => None,
    });
    let refunded_at = events.iter().find_map(|event| match event {
        OrderEvent::Refunded { refunded_at, .. } => Some(*refunded_at),
        _ => None,
    });
    let command = match (paid_at, refunded_at) {
        (Some(at), _) => {
            let (Some(plan_id), Some(tier), Some(period)) =
                (after.plan_id(), after.tier(), after.period())
            else {
                return Ok(None);
            };
            SubscriptionCommand::ActivateMembership {
                user_id: user_id.clone(),
                order_id: order,
                plan_id: plan_id.clone(),
                tier,
                period,
                at,
            }
        }
        (None, Some(at))
            if after.status() == Some(OrderStatus::Refunded)
                && before.status() != Some(OrderStatus::Refunded) =>
        {
            let granted = match before.granted_membership() {
                Some(granted) => granted,
                None => match legacy_grant(transaction, user_id, &order).await? {
                    LegacyGrant::Live(granted) => granted,
                    // Nothing was granted, or it was taken back already: nothing to revoke.
                    LegacyGrant::Never | LegacyGrant::Revoked => return Ok(None),
                },
            };
            SubscriptionCommand::RevokeMembership {
                order_id: order,
                granted,
                at,
            }
        }
        _ => return Ok(None),
    };
    let subscription = load::load::<Subscription>(transaction, user_id.as_ref()).await?;
    match subscription.decide(user_id.as_ref(), command) {
        Ok(decision) if decision.append.events.is_empty() => Ok(None),
        Ok(decision) => {
            let granted = decision
                .events
                .iter()
                .find_map(|event| decision.after.granted_by(event));
            Ok(Some(match (paid_at, granted) {
                (Some(_), Some(granted)) => MembershipChange::Activated {
                    granted,
                    append: decision.append,
                },
                _ => MembershipChange::Revoked {
                    append: decision.append,
                },
            }))
        }
        // A refunded order that never activated anything has nothing to take back.
        Err(Refusal::Domain(SubscriptionError::OrderNotActivated { .. })) => Ok(None),
        // The money is recorded whatever the membership says; a person must look.
        Err(Refusal::Domain(error)) => {
            tracing::error!(
                order_id,
                user_id = %user_id,
                code = error.code(),
                %error,
                "the payment is recorded but the membership refused it"
            );
            Ok(None)
        }
        Err(Refusal::Encode(error)) => Err(Attempt::Failed(error.to_string())),
    }
}

fn with_membership(command: OrderCommand, granted: GrantedPeriod) -> OrderCommand {
    match command {
        OrderCommand::ConfirmPayment {
            charge_id,
            gateway_event_id,
            amount,
            transaction_no,
            paid_at,
            at,
            ..
        } => OrderCommand::ConfirmPayment {
            charge_id,
            gateway_event_id,
            amount,
            transaction_no,
            paid_at,
            at,
            membership: Some(granted),
        },
        other => other,
    }
}

/// What an order paid before payments recorded their grant did to its buyer's membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LegacyGrant {
    /// It granted nothing (yet).
    Never,
    /// It granted this period, still standing.
    Live(GrantedPeriod),
    /// It granted a period that was taken back since.
    Revoked,
}

/// Finds what an order paid before payments recorded their grant did to its buyer's
/// membership, in the buyer's membership stream (read whole: this happens once per such
/// order, when it is refunded in full or when an earlier version's work is finished).
pub(crate) async fn legacy_grant(
    transaction: &mut AnyConnection,
    user_id: &UserId,
    order_id: &OrderId,
) -> Result<LegacyGrant, Attempt<std::convert::Infallible>> {
    let stream =
        projections::log::read_stream_in(transaction, Subscription::TYPE, user_id.as_ref())
            .await
            .map_err(|error| Attempt::Failed(error.to_string()))?;
    let mut run = 0;
    let mut found = LegacyGrant::Never;
    for stored in stream {
        let projections::LedgerEvent::Subscription(event) = stored.event else {
            continue;
        };
        match &event {
            SubscriptionEvent::MembershipActivated { .. } => run += 1,
            SubscriptionEvent::MembershipRevoked {
                order_id: revoked, ..
            } if revoked == order_id => return Ok(LegacyGrant::Revoked),
            _ => {}
        }
        if let SubscriptionEvent::MembershipActivated {
            order_id: granted,
            tier,
            starts_at,
            ends_at,
            ..
        }
        | SubscriptionEvent::MembershipExtended {
            order_id: granted,
            tier,
            starts_at,
            ends_at,
            ..
        } = event
        {
            if granted == *order_id {
                found = LegacyGrant::Live(GrantedPeriod {
                    run,
                    tier,
                    starts_at,
                    ends_at,
                });
            }
        }
    }
    Ok(found)
}

/// The settlement of an event already recorded with a final outcome, from its inbox row.
async fn already_settled(
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

/// Domain refusals of a gateway fact: either it does not belong to the order (unmatched, kept)
/// or it came too early (deferred, redelivered later).
fn classify(error: &OrderError) -> Outcome {
    match error {
        OrderError::NotCreated
        | OrderError::ChargeMismatch { .. }
        | OrderError::RefundAmountMismatch { .. }
        | OrderError::GatewayRefundMismatch { .. } => Outcome::Unmatched,
        OrderError::UnknownRefund { .. } | OrderError::InvalidTransition { .. } => {
            Outcome::Deferred
        }
        OrderError::AlreadyCreated
        | OrderError::NotPurchasable { .. }
        | OrderError::ExpiryNotInFuture { .. }
        | OrderError::NotYetExpired { .. }
        | OrderError::NonPositiveAmount
        | OrderError::CurrencyMismatch { .. }
        | OrderError::RefundExceedsRefundable { .. }
        | OrderError::RefundAlreadyRequested { .. }
        | OrderError::TooManyRefunds { .. }
        | OrderError::TextTooLong { .. }
        | OrderError::Ledger(_) => Outcome::Unmatched,
    }
}

/// The order a gateway event is about, and the command it means for that order.
async fn target_order(
    state: &AppState,
    event: &GatewayEvent,
) -> Result<Option<(OrderId, OrderCommand)>, SettlementError> {
    let now = Utc::now();
    Ok(match event {
        GatewayEvent::ChargeSucceeded { event_id, charge } => {
            order_id_from_order_no(&charge.order_no).map(|order_id| {
                (
                    order_id,
                    OrderCommand::ConfirmPayment {
                        charge_id: charge.charge_id.clone(),
                        gateway_event_id: Some(event_id.clone()),
                        amount: charge.amount,
                        transaction_no: charge.transaction_no.clone(),
                        paid_at: charge.time_paid.unwrap_or(now),
                        at: now,
                        membership: None,
                    },
                )
            })
        }
        GatewayEvent::ChargeFailed { event_id, charge } => order_id_from_order_no(&charge.order_no)
            .map(|order_id| {
                (
                    order_id,
                    OrderCommand::FailPayment {
                        charge_id: charge.charge_id.clone(),
                        gateway_event_id: Some(event_id.clone()),
                        failure_code: charge.failure_code.clone(),
                        failure_message: charge.failure_message.clone(),
                        at: now,
                    },
                )
            }),
        GatewayEvent::RefundSucceeded { event_id, refund } => {
            let order = refund_order(state, refund).await?;
            order.zip(refund.refund_id).map(|(order_id, refund_id)| {
                (
                    order_id,
                    OrderCommand::ConfirmRefund {
                        refund_id,
                        gateway_refund_id: Some(refund.gateway_refund_id.clone()),
                        gateway_event_id: Some(event_id.clone()),
                        reported: Some(ReportedRefund {
                            charge_id: refund.charge_id.clone(),
                            amount: refund.amount,
                        }),
                        at: now,
                    },
                )
            })
        }
        GatewayEvent::RefundFailed { event_id, refund } => {
            let order = refund_order(state, refund).await?;
            order.zip(refund.refund_id).map(|(order_id, refund_id)| {
                (
                    order_id,
                    OrderCommand::FailRefund {
                        refund_id,
                        gateway_refund_id: Some(refund.gateway_refund_id.clone()),
                        gateway_event_id: Some(event_id.clone()),
                        failure_code: refund.failure_code.clone(),
                        failure_message: refund.failure_message.clone(),
                        at: now,
                    },
                )
            })
        }
        GatewayEvent::Other { .. } => None,
    })
}

/// A refund's order: from the charge's order number, else by the charge id in the views.
async fn refund_order(
    state: &AppState,
    refund: &gateways::RefundFacts,
) -> Result<Option<OrderId>, SettlementError> {
    if let Some(order_id) = refund
        .charge_order_no
        .as_deref()
        .and_then(order_id_from_order_no)
    {
        return Ok(Some(order_id));
    }
    let row = projections::order_status::find_by_charge(
        &state.store.read,
        &projections::Tables::live(),
        refund.charge_id.as_ref(),
    )
    .await?;
    Ok(row.and_then(|row| row.order_id.parse().ok()))
}

/// An inbox row: a verified gateway event and what became of it.
struct InboxRow<'a> {
    provider: &'a str,
    event: &'a GatewayEvent,
    /// The body exactly as received: kept as bytes, never through a lossy conversion.
    raw: &'a [u8],
    order_id: Option<&'a str>,
    outcome: Outcome,
    /// The log position of the last event it led to.
    position: Option<i64>,
}

/// Keeps what the events at `first..=last` rest on.
async fn keep_evidence(
    connection: &mut AnyConnection,
    inbox: &InboxRow<'_>,
    evidence: &Evidence<'_>,
    first: i64,
    last: i64,
) -> Result<(), sqlx::Error> {
    let headers = serde_json::to_string(evidence.signature_headers).unwrap_or_default();
    sqlx::query(
        "INSERT INTO gateway_evidence (provider, event_id, protocol, body, signature_headers, \
         key_fingerprint, first_position, last_position, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(inbox.provider)
    .bind(inbox.event.event_id().to_string())
    .bind(evidence.protocol)
    .bind(evidence.body.to_vec())
    .bind(headers)
    .bind(evidence.key_fingerprint.map(ToOwned::to_owned))
    .bind(first)
    .bind(last)
    .bind(projections::schema::timestamp(&Utc::now()))
    .execute(connection)
    .await?;
    Ok(())
}

/// Upserts the event's row in the inbox. A redelivery counts a delivery; a final outcome is
/// never replaced (a deferred one is, once the event settles).
async fn record(connection: &mut AnyConnection, inbox: &InboxRow<'_>) -> Result<(), sqlx::Error> {
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
