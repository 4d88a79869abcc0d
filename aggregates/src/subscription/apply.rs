//! Folding membership events into state. Never fails and never decides.

use super::state::{tier_index, TIERS};
use super::{MembershipStatus, Subscription, SubscriptionEvent};

impl Subscription {
    pub fn apply(&mut self, event: &SubscriptionEvent) {
        match event {
            SubscriptionEvent::MembershipActivated {
                user_id,
                tier,
                ends_at,
                ..
            } => {
                self.user_id = Some(user_id.clone());
                self.status = MembershipStatus::Active;
                self.tier = Some(*tier);
                self.ends_at = Some(*ends_at);
                self.run += 1;
                self.run_grants = [0; 3];
                self.count_grant(*tier);
            }
            SubscriptionEvent::MembershipExtended {
                tier,
                starts_at,
                ends_at,
                ..
            } => {
                debug_assert_eq!(self.ends_at, Some(*starts_at), "extension leaves a gap");
                debug_assert!(ends_at > starts_at, "extension moves the end backwards");
                self.status = MembershipStatus::Active;
                self.tier = Some(self.tier.map_or(*tier, |current| current.max(*tier)));
                self.ends_at = Some(*ends_at);
                self.count_grant(*tier);
            }
            SubscriptionEvent::MembershipRevoked {
                ends_at,
                revoked_at,
                grant_tier,
                grant_run,
                ..
            } => {
                self.ends_at = Some(*ends_at);
                if ends_at <= revoked_at {
                    self.status = MembershipStatus::Expired;
                }
                // A 1.0 revocation does not say which tier it took back: the tier then stays
                // as it was (only this informational field; the end date is exact).
                if let (Some(tier), Some(run)) = (grant_tier, grant_run) {
                    if *run == self.run {
                        // Zero here is possible while deciding, not in the log: a writer that
                        // read the order before a concurrent refund committed, and this
                        // membership after, decides the revocation again; its order append then
                        // conflicts and the whole transaction is retried, so it never commits.
                        let count = &mut self.run_grants[tier_index(*tier)];
                        *count = count.saturating_sub(1);
                        self.tier = self.live_tier().or(self.tier);
                    }
                }
            }
            SubscriptionEvent::MembershipExpired { .. } => {
                self.status = MembershipStatus::Expired;
            }
        }
    }

    fn count_grant(&mut self, tier: crate::plan::Tier) {
        let count = &mut self.run_grants[tier_index(tier)];
        *count = count.saturating_add(1);
    }

    /// The highest tier still paid for in the current membership run.
    fn live_tier(&self) -> Option<crate::plan::Tier> {
        TIERS
            .iter()
            .rev()
            .find(|tier| self.run_grants[tier_index(**tier)] > 0)
            .copied()
    }
}
