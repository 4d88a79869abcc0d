//! Whether a user is a member; the names are stable because views and clients store them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipStatus {
    /// Never activated.
    #[default]
    None,
    Active,
    /// Was active; its time ran out or was taken back.
    Expired,
}

impl MembershipStatus {
    pub const fn as_str(&self) -> &'static str {
        match self {
            MembershipStatus::None => "none",
            MembershipStatus::Active => "active",
            MembershipStatus::Expired => "expired",
        }
    }
}
