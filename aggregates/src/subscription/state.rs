//! A user's membership as rebuilt from its events, and read-only views of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{OrderId, PlanId, UserId};
use crate::plan::{Period, Tier};

use super::MembershipStatus;

/// One user's membership. Empty (`Default`) until the first activation.
///
/// Invariants: each order appears in `grants` at most once; `ends_at` only moves later,
/// except when a grant is revoked, and then by exactly that grant's length.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub(super) user_id: Option<UserId>,
    /// The lifecycle as recorded by events; `status_at` answers "is it active now?".
    pub(super) status: MembershipStatus,
    pub(super) tier: Option<Tier>,
    pub(super) ends_at: Option<DateTime<Utc>>,
    /// Index in `grants` where the current unbroken membership began; the tier is the highest
    /// live grant from there on.
    pub(super) run_start: usize,
    pub(super) grants: Vec<MembershipGrant>,
}

/// The time one order bought, as granted. `starts_at..ends_at` is the window at grant time;
/// a later revocation of an earlier grant shifts real time but not this record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipGrant {
    pub order_id: OrderId,
    pub plan_id: PlanId,
    pub tier: Tier,
    pub period: Period,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub revoked: bool,
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

    pub fn grants(&self) -> &[MembershipGrant] {
        &self.grants
    }

    pub fn grant(&self, order_id: &OrderId) -> Option<&MembershipGrant> {
        self.grants.iter().find(|grant| &grant.order_id == order_id)
    }

    /// Active at `at` by end date: a new purchase then extends rather than restarts.
    pub(super) fn runs_past(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.ends_at.filter(|ends_at| *ends_at > at)
    }
}
