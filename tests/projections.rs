//! The projector on both stores: racing projectors and projectors killed mid-batch leave
//! the views exactly equal to the log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use aggregates::{
    Channel, ChargeId, Currency, GatewayEventId, Money, Order, OrderCommand, OrderId, PlanCatalog,
    PlanId, UserId,
};
use chrono::Utc;
use payledger::store::{Actor, CommandBus, EventMetadata, Source};
use projections::{Projector, Tables};

use crate::helpers::on_both_stores;

fn metadata() -> EventMetadata {
    EventMetadata {
        request_id: "projection-test".to_owned(),
        actor: Actor::System,
        source: Source::Cli,
        gateway_event_id: None,
        recorded_at: Utc::now(),
    }
}

/// Appends `count` paid orders for one user, straight through the domain.
async fn paid_orders(bus: &CommandBus<Order>, count: usize) {
    let plan = PlanCatalog::standard()
        .find(&PlanId::parse("pro-monthly").unwrap())
        .cloned()
        .unwrap();
    for index in 0..count {
        let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
        let id = order_id.to_string();
        let now = Utc::now();
        let charge = ChargeId::parse(&format!("ch_kill{index:06}")).unwrap();
        let commands = vec![
            OrderCommand::Create {
                order_id,
                user_id: UserId::parse("frank").unwrap(),
                plan: plan.clone(),
                channel: Channel::WxPubQr,
                at: now,
            },
            OrderCommand::RequestCharge {
                charge_id: charge.clone(),
                qr_code: "weixin://wxpay/bizpayurl?pr=test".to_owned(),
                expires_at: now + chrono::Duration::minutes(15),
                at: now,
            },
            OrderCommand::ConfirmPayment {
                charge_id: charge,
                gateway_event_id: Some(
                    GatewayEventId::parse(&format!("evt_kill{index:06}")).unwrap(),
                ),
                amount: Money::new(9900, Currency::Cny).unwrap(),
                transaction_no: None,
                paid_at: now,
                at: now,
                membership: None,
            },
        ];
        for command in commands {
            bus.execute(&id, command, &metadata()).await.unwrap();
        }
    }
}

on_both_stores! {
    async fn projectors_killed_mid_batch_resume_without_gaps_or_doubles(db: &TestDb) {
        let bus = CommandBus::<Order>::new(&db.store);
        paid_orders(&bus, 150).await;
        let head = projections::log::head(&db.store.read).await.unwrap();

        let live = Projector::new(db.store.read.clone(), Tables::live());
        live.prepare().await.unwrap();
        // Several projector "processes" race, each with its own connections, and are killed
        // at arbitrary moments: the task is aborted and its connections closed, as when a
        // process dies, so the database rolls back whatever batch was open.
        for round in 0..6u64 {
            let mut processes = Vec::new();
            for _ in 0..3 {
                let pool = sqlx::any::AnyPoolOptions::new()
                    .max_connections(2)
                    .connect(db.url.as_str())
                    .await
                    .unwrap();
                let projector = Projector::new(pool.clone(), Tables::live());
                let task = tokio::spawn(async move { projector.catch_up(None, None).await });
                processes.push((task, pool));
            }
            tokio::time::sleep(Duration::from_millis(3 + round * 2)).await;
            for (task, pool) in processes {
                task.abort();
                let _ = task.await;
                pool.close().await;
            }
        }
        assert_eq!(live.catch_up(None, None).await.unwrap(), head);

        let entries = projections::transaction_history::page(&db.store.read, &Tables::live(), "frank", None, 100).await.unwrap();
        assert_eq!(entries.len(), 100);
        let count: i64 = sqlx::Row::try_get(
            &sqlx::query("SELECT CAST(count(*) AS BIGINT) AS n, CAST(sum(amount_minor) AS BIGINT) AS total FROM view_transaction_history WHERE user_id = 'frank'")
                .fetch_one(&db.store.read)
                .await
                .unwrap(),
            "n",
        )
        .unwrap();
        assert_eq!(count, 150, "every payment appears exactly once");
        let report = projections::replay::audit(&db.store.read).await.unwrap();
        assert!(report.is_clean(), "{:?}", report.differences);
        assert_eq!(report.position, head);
    }
}

on_both_stores! {
    async fn the_state_can_be_rebuilt_as_of_an_instant(db: &TestDb) {
        let bus = CommandBus::<Order>::new(&db.store);
        paid_orders(&bus, 2).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let instant = Utc::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        paid_orders(&bus, 3).await;

        let scratch = projections::replay::rebuild_as_of(&db.store.read, instant).await.unwrap();
        let then = projections::transaction_history::page(&db.store.read, scratch.tables(), "frank", None, 100).await.unwrap();
        assert_eq!(then.len(), 2, "only the payments recorded before the instant");
        let live = Projector::new(db.store.read.clone(), Tables::live());
        live.prepare().await.unwrap();
        live.catch_up(None, None).await.unwrap();
        let now = projections::transaction_history::page(&db.store.read, &Tables::live(), "frank", None, 100).await.unwrap();
        assert_eq!(now.len(), 5);

        if db.store.dialect() == payledger::store::Dialect::Postgres {
            // The scratch set writes no WAL; the live views are as durable as the log.
            let persistence = |table: &str| {
                let sql = format!("SELECT CAST(relpersistence AS TEXT) AS p FROM pg_class WHERE relname = '{table}'");
                async move {
                    let row = sqlx::query(&sql).fetch_one(&db.store.read).await.unwrap();
                    sqlx::Row::try_get::<String, _>(&row, "p").unwrap()
                }
            };
            for (table, _) in scratch.tables().views() {
                assert_eq!(persistence(table).await, "u", "{table}");
            }
            assert_eq!(persistence(&scratch.tables().checkpoints).await, "u");
            assert_eq!(persistence(&Tables::live().order_status).await, "p");
        }
    }
}
