//! The reconciler on both stores: a payment whose webhook was lost is confirmed from the
//! gateway, once; unpaid orders past expiry are closed and paid ones never are; events no
//! order took are listed; and two instances never reconcile at the same time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use aggregates::{ChargeId, Order};
use chrono::Utc;
use cqrs_es::Aggregate;
use gateways::pingpp::signature;
use gateways::GatewayEvent;
use payledger::ledger::reconciled_event_id;
use payledger::ledger::settle::{self, Outcome};
use payledger::process::reconciler::{
    self, ReconcilerSettings, Report, ADVISORY_LOCK_KEY, LEASE_NAME,
};
use payledger::store::Source;
use projections::log::{self as event_log, StoredEvent};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

use crate::app::{sandbox_key, App};
use crate::helpers::on_both_stores;

/// Every pending order is old enough to look up.
const AT_ONCE: ReconcilerSettings = ReconcilerSettings {
    pending_age: Duration::ZERO,
    interval: Duration::from_secs(30),
    pending_batch: reconciler::PENDING_BATCH_MAX,
};

/// Only orders past expiry are looked at (nothing has been pending for a day).
pub(crate) const EXPIRY_ONLY: ReconcilerSettings = ReconcilerSettings {
    pending_age: Duration::from_secs(24 * 60 * 60),
    interval: Duration::from_secs(30),
    pending_batch: reconciler::PENDING_BATCH_MAX,
};

pub(crate) async fn events_of(app: &App, order_id: &str) -> Vec<StoredEvent> {
    event_log::read_stream(&app.state.store.read, Order::TYPE, order_id)
        .await
        .unwrap()
}

pub(crate) async fn count_of(app: &App, order_id: &str, event_type: &str) -> usize {
    events_of(app, order_id)
        .await
        .iter()
        .filter(|event| event.event_type == event_type)
        .count()
}

async fn status_of(app: &App, order_id: &str) -> String {
    projections::order_status::find(
        &app.state.store.read,
        &projections::Tables::live(),
        order_id,
    )
    .await
    .unwrap()
    .unwrap()
    .status
}

/// Pays in the sandbox without the webhook ever being sent.
async fn pay_and_lose_the_webhook(app: &App, order: &Value) {
    app.pay(order, "drop=1").await;
    let dropped = app.sandbox.as_ref().unwrap().deliveries().dropped;
    assert!(dropped >= 1, "the sandbox sent the webhook");
}

on_both_stores! {
    async fn a_payment_whose_webhook_was_lost_is_confirmed_once(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("rosa").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        pay_and_lose_the_webhook(&app, &order).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(status_of(&app, &order_id).await, "pending");

        let report = reconciler::run_once(&app.state, &AT_ONCE).await.unwrap();
        assert!(!report.skipped);
        assert_eq!((report.checked, report.confirmed, report.expired), (1, 1, 0), "{report}");
        assert_eq!((report.gateway_errors, report.failed), (0, 0), "{report}");
        app.poll_until(&order_id, "rosa", |body| {
            body["status"] == "paid" && body["membership"]["active"] == true
        })
        .await;
        let events = events_of(&app, &order_id).await;
        let confirmed = events
            .iter()
            .find(|event| event.event_type == "PaymentConfirmed")
            .unwrap();
        assert_eq!(confirmed.metadata["source"], "reconciler");
        let charge = ChargeId::parse(&app.charge_of(&order_id).await).unwrap();
        let event_id = reconciled_event_id(&charge).unwrap();
        assert_eq!(confirmed.metadata["gateway_event_id"], event_id.as_str());

        // Another pass finds nothing to do, and settling the same answer again (as a pass that
        // read the view before it caught up would) is a duplicate.
        let again = reconciler::run_once(&app.state, &AT_ONCE).await.unwrap();
        assert_eq!((again.confirmed, again.expired), (0, 0), "{again}");
        let gateway = app.state.gateway_for(aggregates::Channel::AlipayQr).unwrap();
        let retrieved = gateway.retrieve_charge(&charge).await.unwrap();
        let event = GatewayEvent::ChargeSucceeded { event_id, charge: retrieved.charge };
        let settled = settle::settle(&app.state, gateway.provider(), &event, &settle::Evidence::answer(&retrieved.answer), Source::Reconciler, "test")
            .await
            .unwrap();
        assert_eq!(settled.outcome, Outcome::Duplicate);
        assert_eq!(count_of(&app, &order_id, "PaymentConfirmed").await, 1);
        let memberships: i64 = sqlx::query(
            "SELECT CAST(count(*) AS BIGINT) AS n FROM events \
             WHERE event_type IN ('MembershipActivated', 'MembershipExtended')",
        )
        .fetch_one(&db.store.read)
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
        assert_eq!(memberships, 1);
        crate::app::audit_is_clean(db).await;
        app.stop().await;
    }

    async fn orders_past_expiry_are_closed_unless_the_gateway_was_paid(db: &TestDb) {
        let app = App::spawn(db).await;
        let abandoned = app.create_order("sam").await;
        let abandoned_id = abandoned["id"].as_str().unwrap().to_owned();
        let paid = app.create_order("tess").await;
        let paid_id = paid["id"].as_str().unwrap().to_owned();
        pay_and_lose_the_webhook(&app, &paid).await;
        let settled = app.create_order("ugo").await;
        let settled_id = settled["id"].as_str().unwrap().to_owned();
        app.pay(&settled, "").await;
        app.poll_until(&settled_id, "ugo", |body| body["status"] == "paid").await;

        // Nothing has expired yet.
        let now = reconciler::run_once(&app.state, &EXPIRY_ONLY).await.unwrap();
        assert_eq!((now.checked, now.confirmed, now.expired), (0, 0, 0), "{now}");

        // Sixteen minutes on, both pending orders are past their fifteen-minute expiry.
        let later = Utc::now() + chrono::Duration::minutes(16);
        let report = reconciler::run_once_at(&app.state, &EXPIRY_ONLY, later).await.unwrap();
        assert_eq!((report.checked, report.confirmed, report.expired), (2, 1, 1), "{report}");
        app.poll_until(&abandoned_id, "sam", |body| body["status"] == "expired").await;
        app.poll_until(&paid_id, "tess", |body| body["status"] == "paid").await;
        assert_eq!(count_of(&app, &paid_id, "OrderExpired").await, 0);
        assert_eq!(count_of(&app, &settled_id, "OrderExpired").await, 0);
        assert_eq!(status_of(&app, &settled_id).await, "paid");
        let expired = events_of(&app, &abandoned_id).await;
        let closing = expired.iter().find(|event| event.event_type == "OrderExpired").unwrap();
        assert_eq!(closing.metadata["source"], "reconciler");
        assert_eq!(closing.metadata["actor"], "system");

        // A later pass has nothing left to close.
        let again = reconciler::run_once_at(&app.state, &EXPIRY_ONLY, later).await.unwrap();
        assert_eq!((again.confirmed, again.expired), (0, 0), "{again}");
        crate::app::audit_is_clean(db).await;
        app.stop().await;
    }

    async fn gateway_events_no_order_took_are_listed(db: &TestDb) {
        let app = App::spawn(db).await;
        let order_no = uuid::Uuid::new_v4().simple().to_string();
        let body = serde_json::to_vec(&json!({
            "id": "evt_strayrecon00001", "object": "event", "created": 1_795_000_000,
            "livemode": false, "type": "charge.succeeded", "pending_webhooks": 0,
            "request": "iar_test",
            "data": { "object": {
                "id": "ch_strayrecon0000000000001", "object": "charge", "created": 1_795_000_000,
                "livemode": false, "paid": true, "refunded": false, "app": "app_sandbox",
                "channel": "alipay_qr", "order_no": order_no, "amount": 9900, "currency": "cny",
                "subject": "Pro", "body": "Pro membership", "time_paid": 1_795_000_100,
                "transaction_no": "2026112522009", "amount_refunded": 0, "metadata": {},
                "credential": {},
            }},
        }))
        .unwrap();
        let response = app
            .client
            .post(app.url("/v1/webhooks/pingpp"))
            .header("content-type", "application/json")
            .header("x-pingplusplus-signature", signature::sign(sandbox_key(), &body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        let report = reconciler::run_once(&app.state, &AT_ONCE).await.unwrap();
        assert_eq!(report.unsettled.len(), 1, "{report}");
        let stray = &report.unsettled[0];
        assert_eq!(stray.event_id, "evt_strayrecon00001");
        assert_eq!(stray.event_type, "charge.succeeded");
        assert_eq!(stray.outcome, "unmatched");
        assert!(report.to_string().contains("evt_strayrecon00001"), "{report}");
        app.stop().await;
    }

    async fn two_instances_never_reconcile_at_once(db: &TestDb) {
        let first = App::spawn(db).await;
        let second = App::spawn_second(db, &first).await;
        let order = first.create_order("vera").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        pay_and_lose_the_webhook(&first, &order).await;
        // The second instance's views must see the order before it can race for it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !projections::order_status::find(
            &second.state.store.read,
            &projections::Tables::live(),
            &order_id,
        )
        .await
        .unwrap()
        .is_some_and(|row| row.status == "pending")
        {
            assert!(tokio::time::Instant::now() < deadline, "the second instance never saw the order");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let (one, two) = tokio::join!(
            reconciler::run_once(&first.state, &AT_ONCE),
            reconciler::run_once(&second.state, &AT_ONCE),
        );
        let (one, two): (Report, Report) = (one.unwrap(), two.unwrap());
        assert_eq!(one.confirmed + two.confirmed, 1, "{one}{two}");
        first.poll_until(&order_id, "vera", |body| body["status"] == "paid").await;
        assert_eq!(count_of(&first, &order_id, "PaymentConfirmed").await, 1);

        // Whoever held the lock gave it back.
        let third = reconciler::run_once(&second.state, &AT_ONCE).await.unwrap();
        assert!(!third.skipped, "the lock was never released");
        second.stop().await;
        first.stop().await;
    }

    async fn a_pass_is_skipped_while_another_holds_the_lock(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("wim").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        pay_and_lose_the_webhook(&app, &order).await;
        let mut holder = db.store.read.acquire().await.unwrap();
        if db.store.kind() == "postgres" {
            let locked: bool = sqlx::query("SELECT pg_try_advisory_lock($1) AS locked")
                .bind(ADVISORY_LOCK_KEY)
                .fetch_one(&mut *holder)
                .await
                .unwrap()
                .try_get("locked")
                .unwrap();
            assert!(locked);
        } else {
            let until = projections::schema::timestamp(&(Utc::now() + chrono::Duration::minutes(5)));
            sqlx::query("INSERT INTO leases (name, holder, expires_at) VALUES ($1, 'elsewhere', $2)")
                .bind(LEASE_NAME)
                .bind(until)
                .execute(&mut *holder)
                .await
                .unwrap();
        }
        let report = reconciler::run_once(&app.state, &AT_ONCE).await.unwrap();
        assert!(report.skipped, "{report}");
        assert_eq!(report.checked, 0);
        assert_eq!(status_of(&app, &order_id).await, "pending");

        if db.store.kind() == "postgres" {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(ADVISORY_LOCK_KEY)
                .execute(&mut *holder)
                .await
                .unwrap();
        } else {
            // The other holder died: its lease runs out.
            sqlx::query("UPDATE leases SET expires_at = $1 WHERE name = $2")
                .bind(projections::schema::timestamp(&(Utc::now() - chrono::Duration::seconds(1))))
                .bind(LEASE_NAME)
                .execute(&mut *holder)
                .await
                .unwrap();
        }
        drop(holder);
        let report = reconciler::run_once(&app.state, &AT_ONCE).await.unwrap();
        assert!(!report.skipped);
        assert_eq!(report.confirmed, 1, "{report}");
        app.stop().await;
    }

    async fn an_order_flagged_for_review_is_left_alone_until_it_expires(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("xena").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        app.pay(&order, "amount=100").await;
        let flagged = app.poll_until(&order_id, "xena", |body| body["needs_review"] == true).await;
        assert_eq!(flagged["status"], "pending");

        // Its money is recorded: passes leave it to the reviewers while it can still be paid.
        let report = reconciler::run_once(&app.state, &AT_ONCE).await.unwrap();
        assert_eq!((report.checked, report.confirmed, report.expired), (0, 0, 0), "{report}");

        // Past expiry it closes; the gateway's answer for its charge is already in the ledger.
        let later = Utc::now() + chrono::Duration::minutes(16);
        let closing = reconciler::run_once_at(&app.state, &AT_ONCE, later).await.unwrap();
        assert_eq!((closing.checked, closing.expired), (1, 1), "{closing}");
        assert_eq!((closing.confirmed, closing.flagged), (0, 0), "{closing}");
        let closed = app.poll_until(&order_id, "xena", |body| body["status"] == "expired").await;
        assert_eq!(closed["needs_review"], true);
        assert_eq!(count_of(&app, &order_id, "PaymentAmountMismatch").await, 1);
        assert_eq!(count_of(&app, &order_id, "PaymentConfirmed").await, 0);
        crate::app::audit_is_clean(db).await;
        app.stop().await;
    }
}

on_both_stores! {
    async fn an_order_that_never_got_a_charge_is_closed_after_its_window(db: &TestDb) {
        let app = App::spawn(db).await;
        // The process stopped between recording the order and the gateway's answer.
        let order_id = aggregates::OrderId::from_uuid(uuid::Uuid::new_v4());
        let plan = aggregates::PlanCatalog::standard()
            .find(&aggregates::PlanId::parse("pro-monthly").unwrap())
            .cloned()
            .unwrap();
        app.state
            .orders
            .execute(
                &order_id.to_string(),
                aggregates::OrderCommand::Create {
                    order_id,
                    user_id: aggregates::UserId::parse("vera").unwrap(),
                    plan,
                    channel: aggregates::Channel::AlipayQr,
                    at: Utc::now(),
                },
                &crate::app::gateway_metadata("evt_unused"),
            )
            .await
            .unwrap();
        let id = order_id.to_string();
        app.state.views.wake();
        let head = event_log::head(&app.state.store.read).await.unwrap();
        assert!(app.state.views.wait_for(head, Duration::from_secs(5)).await);
        app.poll_until(&id, "vera", |body| body["status"] == "created").await;

        // Within its payment window it is left alone.
        let soon = reconciler::run_once_at(&app.state, &AT_ONCE, Utc::now() + chrono::Duration::minutes(5)).await.unwrap();
        assert_eq!(soon.expired, 0, "{soon}");
        // After it, nothing can pay it: it is closed.
        let later = reconciler::run_once_at(&app.state, &AT_ONCE, Utc::now() + chrono::Duration::minutes(16)).await.unwrap();
        assert_eq!((later.expired, later.charges_closed, later.gateway_errors), (1, 0, 0), "{later}");
        app.poll_until(&id, "vera", |body| body["status"] == "expired").await;
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_flood_of_abandoned_orders_cannot_starve_a_lost_payment(db: &TestDb) {
        const BATCH: i64 = 4;
        const FLOOD: usize = 9;
        let settings = ReconcilerSettings { pending_batch: BATCH, ..AT_ONCE };
        let app = App::spawn(db).await;
        for _ in 0..FLOOD {
            app.create_order("flooder").await;
        }
        let order = app.create_order("payer").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        pay_and_lose_the_webhook(&app, &order).await;

        // Each pass takes the orders never checked first, so the payment is found within
        // the passes it takes to look at every order once.
        let passes_needed = (FLOOD + 1).div_ceil(usize::try_from(BATCH).unwrap());
        let mut passes = 0;
        while status_of(&app, &order_id).await != "paid" {
            passes += 1;
            assert!(passes <= passes_needed, "not found in {passes_needed} passes");
            let report = reconciler::run_once(&app.state, &settings).await.unwrap();
            assert!(report.checked <= usize::try_from(BATCH).unwrap());
            assert_eq!(report.more_due, passes < passes_needed, "pass {passes}: {report:?}");
        }
        // The abandoned orders each got their one look and now wait before the next.
        let report = reconciler::run_once(&app.state, &settings).await.unwrap();
        assert_eq!(report.checked, 0, "{report:?}");
        app.stop().await;
    }
}

on_both_stores! {
    async fn late_money_on_an_expired_order_can_be_refunded(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("lena").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        let later = Utc::now() + chrono::Duration::minutes(16);
        let report = reconciler::run_once_at(&app.state, &EXPIRY_ONLY, later).await.unwrap();
        assert_eq!(report.expired, 1, "{report}");
        app.pay(&order, "late=1").await;
        app.poll_until(&order_id, "lena", |body| body["needs_refund_amount"] == 9900).await;

        let admin = app.token("ops", payledger::auth::Role::Admin);
        let refund_path = format!("/v1/orders/{order_id}/refunds");
        let (status, body) =
            app.post(&refund_path, &admin, json!({"amount": 9901, "reason": "late"})).await;
        assert_eq!(status, StatusCode::CONFLICT, "no more than was received: {body}");
        assert_eq!(body["error"]["code"], "order.refund_exceeds_paid");
        let (status, refund) =
            app.post(&refund_path, &admin, json!({"amount": 9900, "reason": "late"})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{refund}");
        let settled = app
            .poll_until(&order_id, "lena", |body| body["refunded_amount"] == 9900)
            .await;
        assert_eq!(settled["status"], "expired", "the order stays closed");
        assert_eq!(settled["needs_refund_amount"], 0, "nothing owed any more");
        assert_eq!(count_of(&app, &order_id, "Refunded").await, 1);
        let (status, _) =
            app.post(&refund_path, &admin, json!({"amount": 1, "reason": "again"})).await;
        assert_eq!(status, StatusCode::CONFLICT);
        crate::app::audit_is_clean(db).await;
        app.stop().await;
    }
}
