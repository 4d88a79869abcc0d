//! The membership time one paid order bought, as the order keeps it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::plan::Tier;

/// The period a payment bought: recorded on the order's `PaymentConfirmed` in the same
/// transaction as the membership's activation, so taking it back later needs nothing but the
/// order. `run` numbers the unbroken membership it joined (1 for the first activation, one
/// more for each activation from nothing), so a revocation knows whether it still shapes the
/// current tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantedPeriod {
    pub run: u32,
    pub tier: Tier,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

impl GrantedPeriod {
    /// How much membership time it gave.
    pub fn length(&self) -> chrono::Duration {
        self.ends_at.signed_duration_since(self.starts_at)
    }
}
