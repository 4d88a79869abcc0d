//! Shared builders so each example states only what matters to its rule.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::{AggregateTestExecutor, TestFramework};
use uuid::Uuid;

use crate::{
    GrantedPeriod, OrderId, Period, PlanId, Subscription, SubscriptionCommand, SubscriptionEvent,
    Tier, UserId,
};

/// A calendar day at 08:00 UTC, so month arithmetic is easy to check by eye.
pub fn day(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, 8, 0, 0).unwrap()
}

pub fn order(n: u128) -> OrderId {
    OrderId::from_uuid(Uuid::from_u128(0x3000 + n))
}

pub fn user() -> UserId {
    UserId::parse("alice@example.com").unwrap()
}

pub fn plan_id(tier: Tier, period: Period) -> PlanId {
    PlanId::parse(&format!("{}-{}", tier.as_str(), period.as_str())).unwrap()
}

pub fn given(events: Vec<SubscriptionEvent>) -> AggregateTestExecutor<Subscription> {
    TestFramework::<Subscription>::with(()).given(events)
}

pub fn replay(events: &[SubscriptionEvent]) -> Subscription {
    let mut subscription = Subscription::default();
    for event in events {
        subscription.apply(event);
    }
    subscription
}

pub fn activate(n: u128, tier: Tier, period: Period, at: DateTime<Utc>) -> SubscriptionCommand {
    SubscriptionCommand::ActivateMembership {
        user_id: user(),
        order_id: order(n),
        plan_id: plan_id(tier, period),
        tier,
        period,
        at,
    }
}

pub fn activated(
    n: u128,
    tier: Tier,
    period: Period,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
) -> SubscriptionEvent {
    SubscriptionEvent::MembershipActivated {
        user_id: user(),
        order_id: order(n),
        plan_id: plan_id(tier, period),
        tier,
        period,
        starts_at,
        ends_at,
    }
}

pub fn extended(
    n: u128,
    tier: Tier,
    period: Period,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
) -> SubscriptionEvent {
    SubscriptionEvent::MembershipExtended {
        order_id: order(n),
        plan_id: plan_id(tier, period),
        tier,
        period,
        starts_at,
        ends_at,
    }
}

/// Pro monthly bought on 10 January: runs to 10 February.
pub fn january_pro() -> SubscriptionEvent {
    activated(
        1,
        Tier::Pro,
        Period::Monthly,
        day(2026, 1, 10),
        day(2026, 2, 10),
    )
}

/// The period an order bought, as the order records it.
pub fn granted(
    run: u32,
    tier: Tier,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
) -> GrantedPeriod {
    GrantedPeriod {
        run,
        tier,
        starts_at,
        ends_at,
    }
}

/// What `january_pro` granted.
pub fn january_granted() -> GrantedPeriod {
    granted(1, Tier::Pro, day(2026, 1, 10), day(2026, 2, 10))
}
