//! What happened to a membership. Events carry the resulting end date so views need no date
//! arithmetic, and the serde form (externally tagged) is what the event store keeps.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::ids::{OrderId, PlanId, UserId};
use crate::plan::{Period, Tier};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscriptionEvent {
    /// A membership started from nothing (first purchase, or after the previous one ended).
    MembershipActivated {
        user_id: UserId,
        order_id: OrderId,
        plan_id: PlanId,
        tier: Tier,
        period: Period,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    },
    /// A purchase while still a member: the new period starts where the current one ends.
    MembershipExtended {
        order_id: OrderId,
        plan_id: PlanId,
        tier: Tier,
        period: Period,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    },
    /// The time an order bought was taken back; `ends_at` is the membership's new end.
    /// Version 1.1 adds what the revoked grant was (its tier and run), so the membership can
    /// recompute its tier without remembering every grant; 1.0 events lack them.
    MembershipRevoked {
        order_id: OrderId,
        removed_seconds: i64,
        ends_at: DateTime<Utc>,
        revoked_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grant_tier: Option<Tier>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grant_run: Option<u32>,
    },
    MembershipExpired {
        expired_at: DateTime<Utc>,
    },
}

impl SubscriptionEvent {
    /// The variant name, which is also the key of the stored JSON object.
    pub const fn event_type_name(&self) -> &'static str {
        match self {
            SubscriptionEvent::MembershipActivated { .. } => "MembershipActivated",
            SubscriptionEvent::MembershipExtended { .. } => "MembershipExtended",
            SubscriptionEvent::MembershipRevoked { .. } => "MembershipRevoked",
            SubscriptionEvent::MembershipExpired { .. } => "MembershipExpired",
        }
    }
}

impl DomainEvent for SubscriptionEvent {
    fn event_type(&self) -> String {
        self.event_type_name().to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            SubscriptionEvent::MembershipRevoked { .. } => "1.1".to_owned(),
            SubscriptionEvent::MembershipActivated { .. }
            | SubscriptionEvent::MembershipExtended { .. }
            | SubscriptionEvent::MembershipExpired { .. } => "1.0".to_owned(),
        }
    }
}
