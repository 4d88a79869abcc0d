//! Random activations, revocations and expiries never grant an order twice and never move the
//! end date backwards except by exactly one revoked grant's length.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;

use super::fixtures::*;
use crate::{Period, Subscription, SubscriptionCommand, SubscriptionEvent, Tier};

#[derive(Debug, Clone)]
enum Step {
    Activate {
        order: u128,
        tier: Tier,
        period: Period,
    },
    Revoke {
        order: u128,
    },
    Expire,
}

fn step() -> impl Strategy<Value = Step> {
    let tier = prop_oneof![Just(Tier::Free), Just(Tier::Pro), Just(Tier::Enterprise)];
    let period = prop_oneof![Just(Period::Monthly), Just(Period::Yearly)];
    prop_oneof![
        4 => (0..6_u128, tier, period).prop_map(|(order, tier, period)| Step::Activate { order, tier, period }),
        2 => (0..6_u128).prop_map(|order| Step::Revoke { order }),
        1 => Just(Step::Expire),
    ]
}

fn command(step: Step, at: DateTime<Utc>) -> SubscriptionCommand {
    match step {
        Step::Activate {
            order: n,
            tier,
            period,
        } => activate(n, tier, period, at),
        Step::Revoke { order: n } => SubscriptionCommand::RevokeMembership {
            order_id: order(n),
            at,
        },
        Step::Expire => SubscriptionCommand::ExpireMembership { at },
    }
}

fn check_step(
    before: &Subscription,
    event: &SubscriptionEvent,
    after: &Subscription,
    granted: &mut BTreeSet<crate::OrderId>,
) -> Result<(), TestCaseError> {
    match event {
        SubscriptionEvent::MembershipActivated { order_id, .. }
        | SubscriptionEvent::MembershipExtended { order_id, .. } => {
            prop_assert!(granted.insert(*order_id), "order {order_id} granted twice");
            if let (Some(old), Some(new)) = (before.ends_at(), after.ends_at()) {
                prop_assert!(new > old, "a purchase moved the end from {old} to {new}");
            }
        }
        SubscriptionEvent::MembershipRevoked {
            order_id,
            removed_seconds,
            ..
        } => {
            let grant = before.grant(order_id).unwrap();
            let length = grant.ends_at - grant.starts_at;
            prop_assert_eq!(*removed_seconds, length.num_seconds());
            let moved = before.ends_at().unwrap() - after.ends_at().unwrap();
            prop_assert_eq!(moved, length);
        }
        SubscriptionEvent::MembershipExpired { .. } => {
            prop_assert_eq!(before.ends_at(), after.ends_at());
        }
    }
    Ok(())
}

/// Runs a random sequence, checking every applied event; returns the recorded history.
fn run(steps: Vec<(Step, i64)>) -> Result<Vec<SubscriptionEvent>, TestCaseError> {
    let mut subscription = Subscription::default();
    let mut history = Vec::new();
    let mut granted = BTreeSet::new();
    let mut now = day(2026, 1, 1);
    for (step, pause_minutes) in steps {
        now += Duration::minutes(pause_minutes);
        let Ok(events) = subscription.decide(command(step, now)) else {
            continue;
        };
        for event in events {
            let before = subscription.clone();
            subscription.apply(&event);
            check_step(&before, &event, &subscription, &mut granted)?;
            history.push(event);
        }
    }
    prop_assert_eq!(replay(&history), subscription);
    Ok(history)
}

fn steps() -> impl Strategy<Value = Vec<(Step, i64)>> {
    proptest::collection::vec((step(), 0..90 * 24 * 60_i64), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn memberships_grant_each_order_once_and_only_revocations_shorten_them(steps in steps()) {
        run(steps)?;
    }
}

/// Guards the generator: with a fixed seed the sequences must reach every kind of event.
#[test]
fn the_random_sequences_reach_every_event() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    for _ in 0..256 {
        let steps = steps().new_tree(&mut runner).unwrap().current();
        for event in run(steps).unwrap() {
            seen.insert(event.event_type_name());
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [
            "MembershipActivated",
            "MembershipExpired",
            "MembershipExtended",
            "MembershipRevoked"
        ]
    );
}
