//! One example per membership rule.

use super::fixtures::*;
use crate::{
    MembershipStatus, Period, SubscriptionCommand, SubscriptionError, SubscriptionEvent, Tier,
    UserId,
};

#[test]
fn a_first_purchase_starts_the_membership_now_for_one_period() {
    given(vec![])
        .when(activate(1, Tier::Pro, Period::Monthly, day(2026, 1, 10)))
        .then_expect_events(vec![january_pro()]);
    let subscription = replay(&[january_pro()]);
    assert_eq!(
        subscription.status_at(day(2026, 1, 20)),
        MembershipStatus::Active
    );
    assert_eq!(subscription.tier(), Some(Tier::Pro));
    assert_eq!(subscription.ends_at(), Some(day(2026, 2, 10)));
    assert_eq!(subscription.user_id(), Some(&user()));
    assert_eq!(subscription.run(), 1);
}

#[test]
fn a_purchase_while_active_stacks_on_the_current_end() {
    given(vec![january_pro()])
        .when(activate(2, Tier::Pro, Period::Yearly, day(2026, 1, 20)))
        .then_expect_events(vec![extended(
            2,
            Tier::Pro,
            Period::Yearly,
            day(2026, 2, 10),
            day(2027, 2, 10),
        )]);
}

#[test]
fn a_purchase_after_the_membership_ended_starts_afresh() {
    given(vec![january_pro()])
        .when(activate(2, Tier::Pro, Period::Monthly, day(2026, 3, 1)))
        .then_expect_events(vec![activated(
            2,
            Tier::Pro,
            Period::Monthly,
            day(2026, 3, 1),
            day(2026, 4, 1),
        )]);
}

#[test]
fn a_purchase_exactly_at_the_end_starts_afresh() {
    given(vec![january_pro()])
        .when(activate(2, Tier::Pro, Period::Monthly, day(2026, 2, 10)))
        .then_expect_events(vec![activated(
            2,
            Tier::Pro,
            Period::Monthly,
            day(2026, 2, 10),
            day(2026, 3, 10),
        )]);
}

#[test]
fn an_upgrade_while_active_raises_the_tier() {
    let upgrade = extended(
        2,
        Tier::Enterprise,
        Period::Monthly,
        day(2026, 2, 10),
        day(2026, 3, 10),
    );
    let subscription = replay(&[january_pro(), upgrade]);
    assert_eq!(subscription.tier(), Some(Tier::Enterprise));
}

#[test]
fn a_lower_tier_renewal_keeps_the_higher_tier() {
    let enterprise = activated(
        1,
        Tier::Enterprise,
        Period::Monthly,
        day(2026, 1, 10),
        day(2026, 2, 10),
    );
    let renewal = extended(
        2,
        Tier::Pro,
        Period::Monthly,
        day(2026, 2, 10),
        day(2026, 3, 10),
    );
    assert_eq!(
        replay(&[enterprise, renewal]).tier(),
        Some(Tier::Enterprise)
    );
}

#[test]
fn activating_for_another_user_is_rejected() {
    let command = SubscriptionCommand::ActivateMembership {
        user_id: UserId::parse("mallory").unwrap(),
        order_id: order(2),
        plan_id: plan_id(Tier::Pro, Period::Monthly),
        tier: Tier::Pro,
        period: Period::Monthly,
        at: day(2026, 1, 20),
    };
    given(vec![january_pro()])
        .when(command)
        .then_expect_error(SubscriptionError::UserMismatch {
            expected: user(),
            received: UserId::parse("mallory").unwrap(),
        });
}

#[test]
fn revoking_takes_back_exactly_the_period_the_order_bought() {
    let yearly = extended(
        2,
        Tier::Pro,
        Period::Yearly,
        day(2026, 2, 10),
        day(2027, 2, 10),
    );
    let revoke = SubscriptionCommand::RevokeMembership {
        order_id: order(2),
        granted: granted(1, Tier::Pro, day(2026, 2, 10), day(2027, 2, 10)),
        at: day(2026, 1, 25),
    };
    given(vec![january_pro(), yearly])
        .when(revoke)
        .then_expect_events(vec![SubscriptionEvent::MembershipRevoked {
            order_id: order(2),
            removed_seconds: 365 * 24 * 3600,
            ends_at: day(2026, 2, 10),
            revoked_at: day(2026, 1, 25),
            grant_tier: Some(Tier::Pro),
            grant_run: Some(1),
        }]);
}

#[test]
fn revoking_an_earlier_grant_shortens_the_stacked_end() {
    let february = extended(
        2,
        Tier::Pro,
        Period::Monthly,
        day(2026, 2, 10),
        day(2026, 3, 10),
    );
    let revoke = SubscriptionCommand::RevokeMembership {
        order_id: order(1),
        granted: january_granted(),
        at: day(2026, 1, 12),
    };
    // January's grant was 31 days long; the membership now ends 31 days before 10 March.
    given(vec![january_pro(), february])
        .when(revoke)
        .then_expect_events(vec![SubscriptionEvent::MembershipRevoked {
            order_id: order(1),
            removed_seconds: 31 * 24 * 3600,
            ends_at: day(2026, 2, 7),
            revoked_at: day(2026, 1, 12),
            grant_tier: Some(Tier::Pro),
            grant_run: Some(1),
        }]);
}

#[test]
fn revoking_the_only_grant_ends_the_membership() {
    let revoked = SubscriptionEvent::MembershipRevoked {
        order_id: order(1),
        removed_seconds: 31 * 24 * 3600,
        ends_at: day(2026, 1, 10),
        revoked_at: day(2026, 1, 12),
        grant_tier: Some(Tier::Pro),
        grant_run: Some(1),
    };
    given(vec![january_pro()])
        .when(SubscriptionCommand::RevokeMembership {
            order_id: order(1),
            granted: january_granted(),
            at: day(2026, 1, 12),
        })
        .then_expect_events(vec![revoked.clone()]);
    let subscription = replay(&[january_pro(), revoked]);
    assert_eq!(subscription.status(), MembershipStatus::Expired);
    assert_eq!(
        subscription.status_at(day(2026, 1, 12)),
        MembershipStatus::Expired
    );
}

#[test]
fn revoking_an_upgrade_restores_the_previous_tier() {
    let upgrade = extended(
        2,
        Tier::Enterprise,
        Period::Monthly,
        day(2026, 2, 10),
        day(2026, 3, 10),
    );
    let revoked = SubscriptionEvent::MembershipRevoked {
        order_id: order(2),
        removed_seconds: 28 * 24 * 3600,
        ends_at: day(2026, 2, 10),
        revoked_at: day(2026, 1, 20),
        grant_tier: Some(Tier::Enterprise),
        grant_run: Some(1),
    };
    let subscription = replay(&[january_pro(), upgrade, revoked]);
    assert_eq!(subscription.tier(), Some(Tier::Pro));
    assert_eq!(
        subscription.status_at(day(2026, 1, 20)),
        MembershipStatus::Active
    );
}

#[test]
fn revoking_an_order_that_never_activated_is_rejected() {
    // A period from a run this membership never had cannot be ours.
    let revoke = SubscriptionCommand::RevokeMembership {
        order_id: order(9),
        granted: granted(2, Tier::Pro, day(2026, 1, 10), day(2026, 2, 10)),
        at: day(2026, 1, 12),
    };
    for history in [vec![], vec![january_pro()]] {
        given(history)
            .when(revoke.clone())
            .then_expect_error(SubscriptionError::OrderNotActivated { order_id: order(9) });
    }
}

#[test]
fn revoking_a_grant_of_an_earlier_run_keeps_the_current_tier() {
    let second_run = activated(
        2,
        Tier::Enterprise,
        Period::Monthly,
        day(2026, 3, 1),
        day(2026, 4, 1),
    );
    let revoked = SubscriptionEvent::MembershipRevoked {
        order_id: order(1),
        removed_seconds: 31 * 24 * 3600,
        ends_at: day(2026, 3, 1),
        revoked_at: day(2026, 3, 2),
        grant_tier: Some(Tier::Pro),
        grant_run: Some(1),
    };
    given(vec![january_pro(), second_run.clone()])
        .when(SubscriptionCommand::RevokeMembership {
            order_id: order(1),
            granted: january_granted(),
            at: day(2026, 3, 2),
        })
        .then_expect_events(vec![revoked.clone()]);
    let subscription = replay(&[january_pro(), second_run, revoked]);
    assert_eq!(subscription.run(), 2);
    assert_eq!(subscription.tier(), Some(Tier::Enterprise));
}

#[test]
fn a_revocation_recorded_before_grants_were_named_still_moves_the_end() {
    // Version 1.0 of the event says nothing of the grant: the end date is exact, the tier
    // stays as it was.
    let legacy: SubscriptionEvent = serde_json::from_value(serde_json::json!({
        "MembershipRevoked": {
            "order_id": order(1),
            "removed_seconds": 2_678_400,
            "ends_at": "2026-01-10T08:00:00Z",
            "revoked_at": "2026-01-12T08:00:00Z"
        }
    }))
    .unwrap();
    let subscription = replay(&[january_pro(), legacy]);
    assert_eq!(subscription.ends_at(), Some(day(2026, 1, 10)));
    assert_eq!(subscription.status(), MembershipStatus::Expired);
    assert_eq!(subscription.tier(), Some(Tier::Pro));
}

#[test]
fn expiring_a_membership_that_has_run_out_records_the_expiry() {
    given(vec![january_pro()])
        .when(SubscriptionCommand::ExpireMembership {
            at: day(2026, 2, 10),
        })
        .then_expect_events(vec![SubscriptionEvent::MembershipExpired {
            expired_at: day(2026, 2, 10),
        }]);
}

#[test]
fn expiring_a_membership_before_its_end_is_rejected() {
    given(vec![january_pro()])
        .when(SubscriptionCommand::ExpireMembership {
            at: day(2026, 2, 9),
        })
        .then_expect_error(SubscriptionError::NotYetDue {
            ends_at: day(2026, 2, 10),
        });
}

#[test]
fn expiring_an_inactive_membership_records_nothing() {
    let expire = SubscriptionCommand::ExpireMembership {
        at: day(2026, 3, 1),
    };
    given(vec![])
        .when(expire.clone())
        .then_expect_events(vec![]);
    let expired = SubscriptionEvent::MembershipExpired {
        expired_at: day(2026, 2, 10),
    };
    given(vec![january_pro(), expired])
        .when(expire)
        .then_expect_events(vec![]);
}

#[test]
fn status_follows_the_end_date() {
    let subscription = replay(&[january_pro()]);
    assert_eq!(
        crate::Subscription::default().status_at(day(2026, 1, 1)),
        MembershipStatus::None
    );
    assert_eq!(
        subscription.status_at(day(2026, 2, 9)),
        MembershipStatus::Active
    );
    assert_eq!(
        subscription.status_at(day(2026, 2, 10)),
        MembershipStatus::Expired
    );
}

#[test]
fn membership_events_are_stored_externally_tagged_by_variant_name() {
    use cqrs_es::DomainEvent;
    let event = january_pro();
    assert_eq!(event.event_type(), "MembershipActivated");
    assert_eq!(event.event_version(), "1.0");
    let json = serde_json::to_value(&event).unwrap();
    assert!(json.get("MembershipActivated").is_some());
    assert_eq!(
        serde_json::from_value::<SubscriptionEvent>(json).unwrap(),
        event
    );
    assert_eq!(
        serde_json::to_value(MembershipStatus::Active).unwrap(),
        serde_json::json!("active")
    );
}
