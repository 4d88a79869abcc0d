//! Folding membership events into state. Never fails and never decides.

use super::state::MembershipGrant;
use super::{MembershipStatus, Subscription, SubscriptionEvent};

impl Subscription {
    pub fn apply(&mut self, event: &SubscriptionEvent) {
        match event {
            SubscriptionEvent::MembershipActivated {
                user_id,
                order_id,
                plan_id,
                tier,
                period,
                starts_at,
                ends_at,
            } => {
                debug_assert!(
                    self.grant(order_id).is_none(),
                    "order {order_id} granted twice"
                );
                self.user_id = Some(user_id.clone());
                self.status = MembershipStatus::Active;
                self.tier = Some(*tier);
                self.ends_at = Some(*ends_at);
                self.run_start = self.grants.len();
                self.grants.push(MembershipGrant {
                    order_id: *order_id,
                    plan_id: plan_id.clone(),
                    tier: *tier,
                    period: *period,
                    starts_at: *starts_at,
                    ends_at: *ends_at,
                    revoked: false,
                });
            }
            SubscriptionEvent::MembershipExtended {
                order_id,
                plan_id,
                tier,
                period,
                starts_at,
                ends_at,
            } => {
                debug_assert!(
                    self.grant(order_id).is_none(),
                    "order {order_id} granted twice"
                );
                debug_assert_eq!(self.ends_at, Some(*starts_at), "extension leaves a gap");
                debug_assert!(ends_at > starts_at, "extension moves the end backwards");
                self.status = MembershipStatus::Active;
                self.tier = Some(self.tier.map_or(*tier, |current| current.max(*tier)));
                self.ends_at = Some(*ends_at);
                self.grants.push(MembershipGrant {
                    order_id: *order_id,
                    plan_id: plan_id.clone(),
                    tier: *tier,
                    period: *period,
                    starts_at: *starts_at,
                    ends_at: *ends_at,
                    revoked: false,
                });
            }
            SubscriptionEvent::MembershipRevoked {
                order_id,
                ends_at,
                revoked_at,
                ..
            } => {
                if let Some(grant) = self
                    .grants
                    .iter_mut()
                    .find(|grant| &grant.order_id == order_id)
                {
                    debug_assert!(!grant.revoked, "order {order_id} revoked twice");
                    grant.revoked = true;
                }
                self.ends_at = Some(*ends_at);
                if ends_at <= revoked_at {
                    self.status = MembershipStatus::Expired;
                }
                self.tier = self.live_tier().or(self.tier);
            }
            SubscriptionEvent::MembershipExpired { .. } => {
                self.status = MembershipStatus::Expired;
            }
        }
    }

    /// The highest tier still paid for in the current membership run.
    fn live_tier(&self) -> Option<crate::plan::Tier> {
        self.grants
            .get(self.run_start..)
            .unwrap_or_default()
            .iter()
            .filter(|grant| !grant.revoked)
            .map(|grant| grant.tier)
            .max()
    }
}
