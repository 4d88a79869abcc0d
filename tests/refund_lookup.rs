//! Refunds whose gateway answer was never written down (the process stopped between
//! reserving the refund and recording what the gateway said): a Ping++ refund has no gateway
//! id then, and the reconciler finds it in the charge's refund list by our refund id; one the
//! gateway never received is recorded failed, so its money can be refunded again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use aggregates::{Channel, ChargeId, Currency, Money, Order, OrderCommand, RefundId};
use chrono::Utc;
use cqrs_es::Aggregate;
use gateways::{RefundRequest, RefundState};
use payledger::ledger::REFUND_NEVER_SENT_CODE;
use payledger::process::reconciler::{self, ReconcilerSettings};
use payledger::store::{Actor, EventMetadata, Source};
use projections::log::{self as event_log, StoredEvent};
use reqwest::StatusCode;
use sandbox::KnobsUpdate;
use serde_json::json;
use sqlx::Row;

use crate::app::App;
use crate::helpers::on_both_stores;

/// Every pending order and refund is old enough to look up.
const AT_ONCE: ReconcilerSettings = ReconcilerSettings {
    pending_age: Duration::ZERO,
    interval: Duration::from_secs(30),
    pending_batch: reconciler::PENDING_BATCH_MAX,
};
const REFUND_MINOR: i64 = 900;

async fn events_of(app: &App, order_id: &str) -> Vec<StoredEvent> {
    event_log::read_stream(&app.state.store.read, Order::TYPE, order_id)
        .await
        .unwrap()
}

/// A paid order: its id and charge.
async fn paid_order(app: &App, user: &str) -> (String, ChargeId) {
    let order = app.create_order(user).await;
    let order_id = order["id"].as_str().unwrap().to_owned();
    app.pay(&order, "").await;
    app.poll_until(&order_id, user, |body| body["status"] == "paid")
        .await;
    let charge = ChargeId::parse(&app.charge_of(&order_id).await).unwrap();
    (order_id, charge)
}

/// Reserves a refund on the order as the refund request does first, without the gateway call
/// that follows it: what a process killed between the two leaves behind.
async fn reserve_refund(app: &App, order_id: &str, refund_id: RefundId) {
    let metadata = EventMetadata {
        request_id: format!("test-refund-{refund_id}"),
        actor: Actor::Admin("ops".to_owned()),
        source: Source::Api,
        gateway_event_id: None,
        recorded_at: Utc::now(),
    };
    let command = OrderCommand::RequestRefund {
        refund_id,
        amount: Money::new(REFUND_MINOR, Currency::Cny).unwrap(),
        reason: "asked before the crash".to_owned(),
        at: Utc::now(),
    };
    app.state
        .orders
        .execute(order_id, command, &metadata)
        .await
        .unwrap();
}

/// Waits until the gateway's `outcome`ed notices of `event_type` number `count`.
async fn wait_for_notices(app: &App, event_type: &str, outcome: &str, count: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen: i64 = sqlx::query(
            "SELECT CAST(count(*) AS BIGINT) AS n FROM gateway_events \
             WHERE event_type = $1 AND outcome = $2",
        )
        .bind(event_type)
        .bind(outcome)
        .fetch_one(&app.state.store.read)
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
        if seen >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {outcome} {event_type} notice"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

on_both_stores! {
    async fn a_pingpp_refund_without_its_gateway_id_is_found_in_the_charges_refund_list(db: &TestDb) {
        let app = App::spawn(db).await;
        let sandbox = app.sandbox.as_ref().unwrap();
        // The refund's notice, arriving before the ledger knows the refund, is put off; its
        // next try is seconds away, so the reconciler is what settles it here.
        sandbox.update_knobs(KnobsUpdate { retry_base_ms: Some(5_000), ..KnobsUpdate::default() }).unwrap();
        let (order_id, charge_id) = paid_order(&app, "mia").await;
        // The gateway received the refund; the answer naming its `re_...` id was lost.
        let gateway = app.state.gateway_for(Channel::AlipayQr).unwrap();
        let refund_id = RefundId::from_uuid(uuid::Uuid::new_v4());
        gateway
            .create_refund(&RefundRequest {
                charge_id: charge_id.clone(),
                refund_id,
                amount: Money::new(REFUND_MINOR, Currency::Cny).unwrap(),
                description: "asked before the crash".to_owned(),
            })
            .await
            .unwrap();
        wait_for_notices(&app, "refund.succeeded", "deferred", 1).await;
        // The ledger's reservation of that refund, whose gateway answer was lost.
        reserve_refund(&app, &order_id, refund_id).await;
        let found = gateway.find_refund(&charge_id, &refund_id).await.unwrap().unwrap();
        assert_eq!(found.state, RefundState::Succeeded);

        let report = reconciler::run_once(&app.state, &AT_ONCE).await.unwrap();
        assert_eq!((report.refunds_settled, report.refunds_failed), (1, 0), "{report}");
        assert_eq!((report.gateway_errors, report.failed), (0, 0), "{report}");
        let settled = app.poll_until(&order_id, "mia", |body| body["refunded_amount"] == REFUND_MINOR).await;
        assert_eq!(settled["status"], "partially_refunded");
        let events = events_of(&app, &order_id).await;
        let refunded: Vec<_> = events.iter().filter(|event| event.event_type == "Refunded").collect();
        assert_eq!(refunded.len(), 1);
        assert_eq!(refunded[0].metadata["source"], "reconciler");

        let again = reconciler::run_once(&app.state, &AT_ONCE).await.unwrap();
        assert_eq!((again.refunds_settled, again.refunds_failed), (0, 0), "{again}");
        crate::app::audit_is_clean(db).await;
        app.stop().await;
    }

    async fn a_refund_the_gateway_never_received_ends_failed_and_can_be_asked_again(db: &TestDb) {
        let app = App::spawn(db).await;
        let (order_id, _) = paid_order(&app, "ned").await;
        let refund_id = RefundId::from_uuid(uuid::Uuid::new_v4());
        reserve_refund(&app, &order_id, refund_id).await;
        let reserved = app.poll_until(&order_id, "ned", |body| body["status"] == "paid").await;
        assert_eq!(reserved["refunded_amount"], 0);

        let report = reconciler::run_once(&app.state, &AT_ONCE).await.unwrap();
        assert_eq!((report.refunds_settled, report.refunds_failed), (0, 1), "{report}");
        assert_eq!((report.gateway_errors, report.failed), (0, 0), "{report}");
        let events = events_of(&app, &order_id).await;
        let failed = events.iter().find(|event| event.event_type == "RefundFailed").unwrap();
        let failure = &failed.payload["RefundFailed"];
        assert_eq!(failure["refund_id"], refund_id.to_string());
        assert_eq!(failure["failure_code"], REFUND_NEVER_SENT_CODE);
        assert_eq!(failed.metadata["source"], "reconciler");

        // The reservation is released: the whole payment can be refunded now.
        let admin = app.token("ops", payledger::auth::Role::Admin);
        let (status, body) = app
            .post(&format!("/v1/orders/{order_id}/refunds"), &admin, json!({"amount": 9900, "reason": "again"}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        app.poll_until(&order_id, "ned", |body| body["status"] == "refunded").await;
        let again = reconciler::run_once(&app.state, &AT_ONCE).await.unwrap();
        assert_eq!(again.refunds_failed, 0, "{again}");
        crate::app::audit_is_clean(db).await;
        app.stop().await;
    }
}
