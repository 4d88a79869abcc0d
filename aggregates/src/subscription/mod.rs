//! The subscription aggregate: one per user, turning paid orders into membership time.
//! It is separate from the order so that renewals and upgrades from many orders stack on a
//! single end date, and each order's time can be taken back exactly on a full refund.

mod aggregate;
mod apply;
mod command;
mod decide;
mod error;
mod event;
mod grant;
mod state;
mod status;
#[cfg(test)]
mod tests;

pub use command::SubscriptionCommand;
pub use error::SubscriptionError;
pub use event::SubscriptionEvent;
pub use grant::GrantedPeriod;
pub use state::Subscription;
pub use status::MembershipStatus;
