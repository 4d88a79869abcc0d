//! One type per identifier, so an order id can never be passed where a charge id is expected,
//! and every id is validated once, where it enters the domain.

mod error;
mod rule;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use error::{IdError, IdProblem};
use rule::TextRule;

/// Defines an id minted by us as a UUID. The server creates the UUID and passes it in,
/// because this crate draws no random numbers.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub const KIND: &'static str = $kind;

            pub const fn from_uuid(uuid: Uuid) -> $name {
                $name(uuid)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, formatter)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text)
                    .map($name)
                    .map_err(|_| IdError::Invalid { kind: $kind, problem: IdProblem::NotUuid })
            }
        }
    };
}

/// Defines an id made of text that must satisfy a `TextRule`. Deserialization runs the same
/// check as `parse`, so a stored event can never smuggle in an invalid id.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $rule:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            const RULE: TextRule = $rule;
            pub const KIND: &'static str = Self::RULE.kind;

            pub fn parse(text: &str) -> Result<$name, IdError> {
                Self::RULE.check(text)?;
                Ok($name(text.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(text: String) -> Result<Self, Self::Error> {
                Self::RULE.check(&text)?;
                Ok($name(text))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $name::parse(text)
            }
        }
    };
}

uuid_id!(
    /// Identifies one order; also the order aggregate's id.
    OrderId,
    "order_id"
);

uuid_id!(
    /// Our id for one refund request on an order, chosen before the gateway is called so that
    /// retries of the same request are recognised.
    RefundId,
    "refund_id"
);

text_id!(
    /// A customer account: 1 to 64 characters of letters, digits and `_ . @ -`, so an email
    /// address or a username both fit. Also the subscription aggregate's id.
    UserId,
    TextRule::plain("user_id", 64, rule::user_char)
);

text_id!(
    /// The gateway's charge id ("ch_..."), which ties a payment notification to an order.
    ChargeId,
    TextRule::prefixed("charge_id", "ch_", 64, rule::gateway_char)
);

text_id!(
    /// The gateway's refund id ("re_...").
    GatewayRefundId,
    TextRule::prefixed("gateway_refund_id", "re_", 64, rule::gateway_char)
);

text_id!(
    /// The gateway's webhook event id ("evt_..."); seeing one twice means a redelivery.
    GatewayEventId,
    TextRule::prefixed("gateway_event_id", "evt_", 64, rule::gateway_char)
);

text_id!(
    /// A plan in the catalog: 1 to 64 characters of lowercase letters, digits and `-`,
    /// safe in URLs and logs ("pro-monthly").
    PlanId,
    TextRule::plain("plan_id", 64, rule::plan_char)
);

impl PlanId {
    /// For ids written in this crate's own code; a test checks each one also passes `parse`.
    pub(crate) fn known(text: &'static str) -> PlanId {
        PlanId(text.to_owned())
    }
}
