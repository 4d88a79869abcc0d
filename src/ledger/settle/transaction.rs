//! The settlement's transaction: the order's new events, the membership they activate or take
//! back, the views, the inbox row and the evidence commit together, or not at all. Conflicts
//! with other writers are retried as a command's are.

use std::convert::Infallible;

use aggregates::{Order, OrderCommand};
use cqrs_es::Aggregate;

use super::evidence::{keep_evidence, Evidence};
use super::inbox::{record, InboxRow};
use super::membership::{membership_change, with_membership, MembershipChange};
use super::outcome::{classify, Outcome};
use super::SettlementError;
use crate::state::AppState;
use crate::store::load::{self, Refusal};
use crate::store::{append, retry_on_conflict, Appended, Attempt, EventMetadata, Store};

/// Settles `command` into order `order_id` in its turn (one settlement or command per order at
/// a time in this process), retrying conflicts with other processes. `inbox` is the event's
/// row, its outcome and position filled in by the attempt that commits.
pub(super) async fn commit(
    state: &AppState,
    order_id: &str,
    command: &OrderCommand,
    metadata: &EventMetadata,
    inbox: &InboxRow<'_>,
    evidence: &Evidence<'_>,
) -> Result<(Outcome, Appended), SettlementError> {
    let lock = state.store.locks.lock_for(Order::TYPE, order_id);
    let _turn = lock.lock().await;
    let attempted = retry_on_conflict(order_id, |attempt| {
        settle_once(
            state,
            attempt,
            order_id,
            command.clone(),
            metadata,
            inbox.clone(),
            evidence,
        )
    })
    .await;
    match attempted {
        Ok(settled) => Ok(settled),
        Err(Attempt::Conflict) => Err(SettlementError::Append(
            "other writers kept changing the order".to_owned(),
        )),
        Err(Attempt::Refused(never)) => match never {},
        Err(Attempt::Failed(detail)) => Err(SettlementError::Append(detail)),
    }
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
) -> Result<(Outcome, Appended), Attempt<Infallible>> {
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
