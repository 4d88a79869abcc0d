//! The membership's side of an order's new events, decided in the settlement's transaction:
//! a confirmed payment grants the period the order bought, a full refund takes it back.

use aggregates::{
    GrantedPeriod, Order, OrderCommand, OrderEvent, OrderId, OrderStatus, Subscription,
    SubscriptionCommand, SubscriptionError, SubscriptionEvent, UserId,
};
use cqrs_es::Aggregate;
use sqlx::AnyConnection;

use crate::store::load::{self, Refusal};
use crate::store::{Attempt, StreamAppend};

/// What an order's new events do to its buyer's membership.
pub(super) enum MembershipChange {
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
pub(super) async fn membership_change(
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

pub(super) fn with_membership(command: OrderCommand, granted: GrantedPeriod) -> OrderCommand {
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
