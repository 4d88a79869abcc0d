//! Random activations, revocations and expiries, sent as the ledger sends them (each order
//! activates once, with its payment, and is revoked at most once, with the period it
//! recorded), never move the end date backwards except by exactly one revoked grant's length,
//! and keep the tier at the highest live grant of the current run.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;

use super::fixtures::*;
use crate::{GrantedPeriod, Period, Subscription, SubscriptionCommand, SubscriptionEvent, Tier};

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

/// What the orders remember: the period each bought, and whether it was taken back.
#[derive(Debug, Default)]
struct Orders {
    granted: BTreeMap<u128, GrantedPeriod>,
    revoked: BTreeSet<u128>,
}

/// The command the ledger would send for `step`, if any: an order activates once and is
/// revoked once, with the period it recorded.
fn command(step: &Step, orders: &Orders, at: DateTime<Utc>) -> Option<SubscriptionCommand> {
    match *step {
        Step::Activate {
            order: n,
            tier,
            period,
        } => (!orders.granted.contains_key(&n)).then(|| activate(n, tier, period, at)),
        Step::Revoke { order: n } => match orders.granted.get(&n) {
            Some(granted) if !orders.revoked.contains(&n) => {
                Some(SubscriptionCommand::RevokeMembership {
                    order_id: order(n),
                    granted: *granted,
                    at,
                })
            }
            _ => None,
        },
        Step::Expire => Some(SubscriptionCommand::ExpireMembership { at }),
    }
}

fn check_step(
    before: &Subscription,
    event: &SubscriptionEvent,
    after: &Subscription,
    orders: &Orders,
) -> Result<(), TestCaseError> {
    match event {
        SubscriptionEvent::MembershipActivated { .. }
        | SubscriptionEvent::MembershipExtended { .. } => {
            if let (Some(old), Some(new)) = (before.ends_at(), after.ends_at()) {
                prop_assert!(new > old, "a purchase moved the end from {old} to {new}");
            }
        }
        SubscriptionEvent::MembershipRevoked {
            order_id,
            removed_seconds,
            ..
        } => {
            let n = orders
                .granted
                .keys()
                .find(|n| order(**n) == *order_id)
                .copied()
                .unwrap();
            let length = orders.granted[&n].length();
            prop_assert_eq!(*removed_seconds, length.num_seconds());
            let moved = before.ends_at().unwrap() - after.ends_at().unwrap();
            prop_assert_eq!(moved, length);
        }
        SubscriptionEvent::MembershipExpired { .. } => {
            prop_assert_eq!(before.ends_at(), after.ends_at());
        }
    }
    let live = orders
        .granted
        .iter()
        .filter(|(n, granted)| granted.run == after.run() && !orders.revoked.contains(n))
        .map(|(_, granted)| granted.tier)
        .max();
    if live.is_some() {
        prop_assert_eq!(after.tier(), live);
    }
    Ok(())
}

/// Runs a random sequence, checking every applied event; returns the recorded history.
fn run(steps: Vec<(Step, i64)>) -> Result<Vec<SubscriptionEvent>, TestCaseError> {
    let mut subscription = Subscription::default();
    let mut history = Vec::new();
    let mut orders = Orders::default();
    let mut now = day(2026, 1, 1);
    for (step, pause_minutes) in steps {
        now += Duration::minutes(pause_minutes);
        let Some(command) = command(&step, &orders, now) else {
            continue;
        };
        let Ok(events) = subscription.decide(command) else {
            continue;
        };
        for event in events {
            let before = subscription.clone();
            subscription.apply(&event);
            match (&step, subscription.granted_by(&event)) {
                (Step::Activate { order: n, .. }, Some(granted)) => {
                    orders.granted.insert(*n, granted);
                }
                (Step::Revoke { order: n }, None) => {
                    orders.revoked.insert(*n);
                }
                _ => {}
            }
            check_step(&before, &event, &subscription, &orders)?;
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
    fn only_revocations_shorten_memberships_and_the_tier_follows_live_grants(steps in steps()) {
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

#[test]
fn the_state_does_not_grow_with_purchases() {
    let mut subscription = Subscription::default();
    let mut sizes = Vec::new();
    for n in 0..1_000_u128 {
        let events = subscription
            .decide(activate(n, Tier::Pro, Period::Monthly, day(2026, 1, 1)))
            .unwrap();
        for event in &events {
            subscription.apply(event);
        }
        if n == 0 || n == 999 {
            sizes.push(serde_json::to_vec(&subscription).unwrap().len());
        }
    }
    // Only the digits of two counters differ between one purchase and a thousand.
    assert!(sizes[1] - sizes[0] <= 8, "{sizes:?}");
}
