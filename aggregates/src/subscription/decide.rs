//! All membership rules: purchases stack on the current end date, and a revocation removes
//! exactly what one order granted (as that order recorded it).

use chrono::{DateTime, Utc};

use crate::ids::{OrderId, PlanId, UserId};
use crate::plan::{Period, Tier};

use super::{
    GrantedPeriod, MembershipStatus, Subscription, SubscriptionCommand, SubscriptionError,
    SubscriptionEvent,
};

/// The facts of one activation request.
struct Purchase {
    user_id: UserId,
    order_id: OrderId,
    plan_id: PlanId,
    tier: Tier,
    period: Period,
    at: DateTime<Utc>,
}

impl Subscription {
    /// Decides what `command` records, without changing the membership. An empty list means
    /// there is nothing new to record (a repeated activation, revocation or expiry).
    pub fn decide(
        &self,
        command: SubscriptionCommand,
    ) -> Result<Vec<SubscriptionEvent>, SubscriptionError> {
        use MembershipStatus as S;
        use SubscriptionCommand as C;
        match (self.status, command) {
            (
                S::None | S::Active | S::Expired,
                C::ActivateMembership {
                    user_id,
                    order_id,
                    plan_id,
                    tier,
                    period,
                    at,
                },
            ) => self.activate(Purchase {
                user_id,
                order_id,
                plan_id,
                tier,
                period,
                at,
            }),
            (S::None, C::RevokeMembership { order_id, .. }) => {
                Err(SubscriptionError::OrderNotActivated { order_id })
            }
            (
                S::Active | S::Expired,
                C::RevokeMembership {
                    order_id,
                    granted,
                    at,
                },
            ) => self.revoke(order_id, granted, at),
            (S::Active, C::ExpireMembership { at }) => self.expire(at),
            // Nothing is running, so there is nothing to expire.
            (S::None | S::Expired, C::ExpireMembership { .. }) => Ok(Vec::new()),
        }
    }

    fn activate(&self, purchase: Purchase) -> Result<Vec<SubscriptionEvent>, SubscriptionError> {
        if let Some(expected) = &self.user_id {
            if expected != &purchase.user_id {
                return Err(SubscriptionError::UserMismatch {
                    expected: expected.clone(),
                    received: purchase.user_id,
                });
            }
        }
        let event = match self.runs_past(purchase.at) {
            Some(current_end) => SubscriptionEvent::MembershipExtended {
                order_id: purchase.order_id,
                plan_id: purchase.plan_id,
                tier: purchase.tier,
                period: purchase.period,
                starts_at: current_end,
                ends_at: end_of(purchase.period, current_end)?,
            },
            None => SubscriptionEvent::MembershipActivated {
                user_id: purchase.user_id,
                order_id: purchase.order_id,
                plan_id: purchase.plan_id,
                tier: purchase.tier,
                period: purchase.period,
                starts_at: purchase.at,
                ends_at: end_of(purchase.period, purchase.at)?,
            },
        };
        Ok(vec![event])
    }

    fn revoke(
        &self,
        order_id: OrderId,
        granted: GrantedPeriod,
        at: DateTime<Utc>,
    ) -> Result<Vec<SubscriptionEvent>, SubscriptionError> {
        // A grant from a run this membership never had cannot be ours.
        if granted.run == 0 || granted.run > self.run || granted.ends_at <= granted.starts_at {
            return Err(SubscriptionError::OrderNotActivated { order_id });
        }
        let length = granted.length();
        let ends_at = self
            .ends_at
            .and_then(|current_end| current_end.checked_sub_signed(length))
            .ok_or(SubscriptionError::TimeOutOfRange)?;
        Ok(vec![SubscriptionEvent::MembershipRevoked {
            order_id,
            removed_seconds: length.num_seconds(),
            ends_at,
            revoked_at: at,
            grant_tier: Some(granted.tier),
            grant_run: Some(granted.run),
        }])
    }

    fn expire(&self, at: DateTime<Utc>) -> Result<Vec<SubscriptionEvent>, SubscriptionError> {
        match self.runs_past(at) {
            Some(ends_at) => Err(SubscriptionError::NotYetDue { ends_at }),
            None => Ok(vec![SubscriptionEvent::MembershipExpired {
                expired_at: at,
            }]),
        }
    }
}

fn end_of(period: Period, start: DateTime<Utc>) -> Result<DateTime<Utc>, SubscriptionError> {
    period
        .end_from(start)
        .ok_or(SubscriptionError::TimeOutOfRange)
}
