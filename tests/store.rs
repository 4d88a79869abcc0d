//! The event store on both backends: migrations, metadata, global positions, append-only
//! history and racing commands.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aggregates::{
    Channel, ChargeId, GatewayEventId, Money, Order, OrderCommand, OrderEvent, OrderId,
    PlanCatalog, PlanId, UserId,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::Aggregate;
use payledger::store::{self, Actor, CommandBus, EventMetadata, Source};
use projections::log::{self as event_log, LedgerEvent};

use crate::helpers::on_both_stores;

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn metadata(request_id: &str) -> EventMetadata {
    EventMetadata {
        request_id: request_id.to_owned(),
        actor: Actor::User("alice".to_owned()),
        source: Source::Api,
        gateway_event_id: None,
        recorded_at: noon(),
    }
}

fn create_command(order_id: OrderId, user: &str) -> OrderCommand {
    let plan = PlanCatalog::standard()
        .find(&PlanId::parse("pro-monthly").unwrap())
        .cloned()
        .unwrap();
    OrderCommand::Create {
        order_id,
        user_id: UserId::parse(user).unwrap(),
        plan,
        channel: Channel::AlipayQr,
        at: noon(),
    }
}

async fn pending_order(bus: &CommandBus<Order>, charge: &str) -> OrderId {
    let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
    let id = order_id.to_string();
    bus.execute(&id, create_command(order_id, "alice"), &metadata("req-1"))
        .await
        .unwrap();
    bus.execute(
        &id,
        OrderCommand::RequestCharge {
            charge_id: ChargeId::parse(charge).unwrap(),
            qr_code: "https://qr.example/pay".to_owned(),
            expires_at: noon() + Duration::minutes(15),
            at: noon(),
        },
        &metadata("req-2"),
    )
    .await
    .unwrap();
    order_id
}

on_both_stores! {
    async fn migrations_can_be_applied_again(db: &TestDb) {
        store::migrate(&db.store).await.unwrap();
        store::migrate(&db.store).await.unwrap();
        assert_eq!(event_log::head(&db.store.read).await.unwrap(), 0);
    }

    async fn every_event_carries_its_metadata_and_a_position(db: &TestDb) {
        let bus = CommandBus::<Order>::new(&db.store);
        let order_id = pending_order(&bus, "ch_meta0001").await;

        let events = event_log::read_stream(&db.store.read, Order::TYPE, &order_id.to_string())
            .await
            .unwrap();
        assert_eq!(events.len(), 2);
        assert!(matches!(events[0].event, LedgerEvent::Order(OrderEvent::OrderCreated { .. })));
        assert!(matches!(events[1].event, LedgerEvent::Order(OrderEvent::ChargeRequested { .. })));
        assert!(events[0].position < events[1].position);
        for (event, request_id) in events.iter().zip(["req-1", "req-2"]) {
            assert_eq!(event.event_version, "1.0");
            assert_eq!(event.metadata["request_id"], request_id);
            assert_eq!(event.metadata["actor"], "user:alice");
            assert_eq!(event.metadata["source"], "api");
            assert!(event.metadata["recorded_at"].starts_with("2026-11-25T12:00:00"));
            assert!(!event.recorded_at.is_empty());
        }
        assert_eq!(
            event_log::stream_head(&db.store.read, Order::TYPE, &order_id.to_string()).await.unwrap(),
            events[1].position
        );
    }

    async fn the_log_refuses_updates_and_deletes(db: &TestDb) {
        let bus = CommandBus::<Order>::new(&db.store);
        pending_order(&bus, "ch_frozen001").await;
        let update = sqlx::query("UPDATE events SET event_type = 'Forged'")
            .execute(&db.store.read)
            .await;
        assert!(update.is_err(), "an UPDATE of the log succeeded");
        assert!(update.unwrap_err().to_string().contains("append-only"));
        let delete = sqlx::query("DELETE FROM events").execute(&db.store.read).await;
        assert!(delete.is_err(), "a DELETE from the log succeeded");
        let events = event_log::read_after(&db.store.read, 0, 100).await.unwrap();
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|event| event.event_type != "Forged"));
    }

    async fn concurrent_appends_get_unique_increasing_positions(db: &TestDb) {
        let bus = std::sync::Arc::new(CommandBus::<Order>::new(&db.store));
        let mut tasks = Vec::new();
        for index in 0..24 {
            let bus = bus.clone();
            tasks.push(tokio::spawn(async move {
                pending_order(&bus, &format!("ch_parallel{index:04}")).await
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let events = event_log::read_after(&db.store.read, 0, 500).await.unwrap();
        assert_eq!(events.len(), 48);
        assert!(events.windows(2).all(|pair| pair[0].position < pair[1].position));
        // Each stream's own order agrees with the global order.
        for event in &events {
            if event.sequence == 2 {
                let first = events
                    .iter()
                    .find(|other| other.aggregate_id == event.aggregate_id && other.sequence == 1)
                    .unwrap();
                assert!(first.position < event.position);
            }
        }
        // Reading in pages from any position sees the same log.
        let tail = event_log::read_after(&db.store.read, events[9].position, 500).await.unwrap();
        assert_eq!(tail.as_slice(), &events[10..]);
    }

    async fn racing_confirmations_record_one_payment(db: &TestDb) {
        let bus = std::sync::Arc::new(CommandBus::<Order>::new(&db.store));
        let order_id = pending_order(&bus, "ch_race00001").await;
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let bus = bus.clone();
            tasks.push(tokio::spawn(async move {
                let mut meta = metadata("webhook");
                meta.actor = Actor::Gateway;
                meta.source = Source::Webhook;
                meta.gateway_event_id = Some("evt_race0001".to_owned());
                bus.execute(
                    &order_id.to_string(),
                    OrderCommand::ConfirmPayment {
                        charge_id: ChargeId::parse("ch_race00001").unwrap(),
                        gateway_event_id: Some(GatewayEventId::parse("evt_race0001").unwrap()),
                        amount: Money::new(9900, aggregates::Currency::Cny).unwrap(),
                        transaction_no: None,
                        paid_at: noon(),
                        at: noon(),
                        membership: None,
                    },
                    &meta,
                )
                .await
            }));
        }
        let mut succeeded = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => succeeded += 1,
                Err(cqrs_es::AggregateError::AggregateConflict) => {}
                Err(other) => panic!("unexpected error {other}"),
            }
        }
        assert!(succeeded >= 1);
        let events = event_log::read_stream(&db.store.read, Order::TYPE, &order_id.to_string())
            .await
            .unwrap();
        let confirmations = events
            .iter()
            .filter(|event| matches!(event.event, LedgerEvent::Order(OrderEvent::PaymentConfirmed { .. })))
            .count();
        assert_eq!(confirmations, 1);
        let confirmed = events.last().unwrap();
        assert_eq!(confirmed.metadata["gateway_event_id"], "evt_race0001");
        assert_eq!(confirmed.metadata["source"], "webhook");
    }
}

on_both_stores! {
    async fn long_histories_load_through_snapshots_with_nothing_lost(db: &TestDb) {
        use aggregates::{Period, Subscription, SubscriptionCommand, Tier};
        let bus = CommandBus::<Subscription>::new(&db.store);
        // Well past several snapshot boundaries: every activation stacks one month.
        let count = usize::try_from(payledger::store::SNAPSHOT_EVERY * 2 + 7).unwrap();
        for _ in 0..count {
            bus.execute(
                "olga",
                SubscriptionCommand::ActivateMembership {
                    user_id: UserId::parse("olga").unwrap(),
                    order_id: OrderId::from_uuid(uuid::Uuid::new_v4()),
                    plan_id: PlanId::parse("pro-monthly").unwrap(),
                    tier: Tier::Pro,
                    period: Period::Monthly,
                    at: noon(),
                },
                &metadata("snapshots"),
            )
            .await
            .unwrap();
        }
        let snapshots: i64 = sqlx::Row::try_get(
            &sqlx::query("SELECT CAST(count(*) AS BIGINT) AS n FROM snapshots")
                .fetch_one(&db.store.read)
                .await
                .unwrap(),
            "n",
        )
        .unwrap();
        assert_eq!(snapshots, 1, "one snapshot row per aggregate, kept current");
        let events = event_log::read_stream(&db.store.read, Subscription::TYPE, "olga").await.unwrap();
        assert_eq!(events.len(), count);
        // Every extension starts where the previous grant ended: the aggregate loaded through
        // snapshots saw exactly the state the log describes, at every command.
        let mut previous_end = None;
        for event in &events {
            match &event.event {
                LedgerEvent::Subscription(aggregates::SubscriptionEvent::MembershipActivated { ends_at, .. }) => {
                    previous_end = Some(*ends_at);
                }
                LedgerEvent::Subscription(aggregates::SubscriptionEvent::MembershipExtended { starts_at, ends_at, .. }) => {
                    assert_eq!(Some(*starts_at), previous_end, "at sequence {}", event.sequence);
                    previous_end = Some(*ends_at);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // Folding the whole log gives the end date of one month per activation.
        let mut folded = Subscription::default();
        for event in &events {
            if let LedgerEvent::Subscription(event) = &event.event {
                folded.apply(event);
            }
        }
        let months = u32::try_from(count).unwrap();
        assert_eq!(
            folded.ends_at(),
            noon().checked_add_months(chrono::Months::new(months))
        );
    }
}
