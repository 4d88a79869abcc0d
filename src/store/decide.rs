//! The one thing the store asks of an aggregate besides cqrs-es's `apply`: its pure `decide`.

use aggregates::{Order, Subscription};
use cqrs_es::Aggregate;

/// An aggregate whose rules are a pure function from state and command to new events.
pub trait Decide: Aggregate + Clone {
    /// Take a snapshot every this many events (`None`: never; the stream stays short).
    const SNAPSHOT_EVERY: Option<i64>;

    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
}

impl Decide for Order {
    // An order has a handful of events in its whole life.
    const SNAPSHOT_EVERY: Option<i64> = None;

    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        Order::decide(self, command)
    }
}

impl Decide for Subscription {
    // A member who renews for years gathers events without end.
    const SNAPSHOT_EVERY: Option<i64> = Some(super::SNAPSHOT_EVERY);

    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        Subscription::decide(self, command)
    }
}
