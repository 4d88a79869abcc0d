//! A user's membership as rebuilt from its events, and read-only views of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::UserId;
use crate::plan::Tier;

use super::MembershipStatus;

/// One user's membership. Empty (`Default`) until the first activation.
///
/// Its size does not grow with its history: it keeps the current end, status and tier, the
/// number of the current run, and how many unrevoked grants of each tier the run holds (the
/// tier is the highest of them). Which order bought which period is kept by the order itself
/// (`GrantedPeriod` on its `PaymentConfirmed`); an order confirms at most one payment, and its
/// activation commits in the same transaction, so each order grants time exactly once.
///
/// Invariants: `ends_at` only moves later, except when a grant is revoked, and then by exactly
/// that grant's length; `tier` is the highest tier with a live grant in the current run, or
/// the last tier when none is left.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub(super) user_id: Option<UserId>,
    /// The lifecycle as recorded by events; `status_at` answers "is it active now?".
    pub(super) status: MembershipStatus,
    pub(super) tier: Option<Tier>,
    pub(super) ends_at: Option<DateTime<Utc>>,
    /// The current unbroken membership's number: 0 before the first activation.
    pub(super) run: u32,
    /// Unrevoked grants of the current run, per tier (free, pro, enterprise).
    pub(super) run_grants: [u32; 3],
}

impl Subscription {
    pub fn user_id(&self) -> Option<&UserId> {
        self.user_id.as_ref()
    }

    /// Whether the membership is active at `at`, judged by its end date alone, so the answer
    /// is right even before an expiry has been recorded.
    pub fn status_at(&self, at: DateTime<Utc>) -> MembershipStatus {
        match (self.status, self.ends_at) {
            (MembershipStatus::None, _) => MembershipStatus::None,
            (MembershipStatus::Active | MembershipStatus::Expired, Some(ends_at))
                if ends_at > at =>
            {
                MembershipStatus::Active
            }
            (MembershipStatus::Active | MembershipStatus::Expired, _) => MembershipStatus::Expired,
        }
    }

    /// The lifecycle as recorded by events (an expiry is recorded only by `ExpireMembership`
    /// or a revocation).
    pub fn status(&self) -> MembershipStatus {
        self.status
    }

    /// The highest tier among the current membership's unrevoked grants.
    pub fn tier(&self) -> Option<Tier> {
        self.tier
    }

    pub fn ends_at(&self) -> Option<DateTime<Utc>> {
        self.ends_at
    }

    /// The number of the current run (0 before the first activation).
    pub fn run(&self) -> u32 {
        self.run
    }

    /// Active at `at` by end date: a new purchase then extends rather than restarts.
    pub(super) fn runs_past(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.ends_at.filter(|ends_at| *ends_at > at)
    }

    /// The period an activation or extension event granted, as the order keeps it. Call on
    /// the subscription after the event was applied.
    pub fn granted_by(&self, event: &super::SubscriptionEvent) -> Option<super::GrantedPeriod> {
        match event {
            super::SubscriptionEvent::MembershipActivated {
                tier,
                starts_at,
                ends_at,
                ..
            }
            | super::SubscriptionEvent::MembershipExtended {
                tier,
                starts_at,
                ends_at,
                ..
            } => Some(super::GrantedPeriod {
                run: self.run,
                tier: *tier,
                starts_at: *starts_at,
                ends_at: *ends_at,
            }),
            super::SubscriptionEvent::MembershipRevoked { .. }
            | super::SubscriptionEvent::MembershipExpired { .. } => None,
        }
    }
}

/// The index of a tier in `run_grants`.
pub(super) const fn tier_index(tier: Tier) -> usize {
    match tier {
        Tier::Free => 0,
        Tier::Pro => 1,
        Tier::Enterprise => 2,
    }
}

/// The tiers in `run_grants` order.
pub(super) const TIERS: [Tier; 3] = [Tier::Free, Tier::Pro, Tier::Enterprise];
