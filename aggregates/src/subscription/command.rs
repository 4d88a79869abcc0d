//! What may be asked of a user's membership. Time arrives as data: deciding never reads the clock.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{OrderId, PlanId, UserId};
use crate::plan::{Period, Tier};

use super::GrantedPeriod;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscriptionCommand {
    /// Grant the period a paid order bought. Sent once per order: with the order's one
    /// confirmed payment, in the same transaction.
    ActivateMembership {
        user_id: UserId,
        order_id: OrderId,
        plan_id: PlanId,
        tier: Tier,
        period: Period,
        at: DateTime<Utc>,
    },
    /// Take back the period an order bought (as the order recorded it), after that order was
    /// fully refunded.
    RevokeMembership {
        order_id: OrderId,
        granted: GrantedPeriod,
        at: DateTime<Utc>,
    },
    /// Record that the membership's time has run out.
    ExpireMembership { at: DateTime<Utc> },
}

impl SubscriptionCommand {
    pub const fn name(&self) -> &'static str {
        match self {
            SubscriptionCommand::ActivateMembership { .. } => "ActivateMembership",
            SubscriptionCommand::RevokeMembership { .. } => "RevokeMembership",
            SubscriptionCommand::ExpireMembership { .. } => "ExpireMembership",
        }
    }
}
