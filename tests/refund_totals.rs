//! Refunds over HTTP on both stores, through the sandbox gateway: the order shows what each
//! refund event says it left (partially refunded, then refunded, with their totals), a failed
//! refund gives back the reservation it says it released, and a replay of the log rebuilds
//! views equal to the live ones.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use payledger::auth::Role;
use reqwest::StatusCode;
use sandbox::KnobsUpdate;
use serde_json::{json, Value};

use crate::app::{audit_is_clean, App};
use crate::helpers::on_both_stores;

/// The order's (refunded, pending, owed back) amounts as the polling endpoint shows them.
fn totals(order: &Value) -> (Option<i64>, Option<i64>, Option<i64>) {
    (
        order["refunded_amount"].as_i64(),
        order["refund_pending_amount"].as_i64(),
        order["needs_refund_amount"].as_i64(),
    )
}

/// The payloads of the order's events of `event_type`, waiting (at most 10 s) for `count`.
async fn events_of(app: &App, order_id: &str, event_type: &str, count: usize) -> Vec<Value> {
    for _ in 0..200 {
        let (status, body) = app
            .get(&format!("/v1/orders/{order_id}/events"), "alice")
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let found: Vec<Value> = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["type"] == event_type)
            .cloned()
            .collect();
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("order {order_id} never had {count} {event_type}");
}

on_both_stores! {
    async fn a_partial_then_a_full_refund_show_the_totals_their_events_carry(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("alice").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        app.confirm_payment(&order, 9900).await;
        app.poll_until(&order_id, "alice", |body| body["status"] == "paid").await;
        let admin = app.token("ops", Role::Admin);
        let refunds = format!("/v1/orders/{order_id}/refunds");

        let (status, body) = app.post(&refunds, &admin, json!({"amount": 3000, "reason": "goodwill"})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let partial = app.poll_until(&order_id, "alice", |body| body["status"] == "partially_refunded").await;
        assert_eq!(totals(&partial), (Some(3000), Some(0), Some(0)));

        // The gateway refuses the next refund: its reservation is released, nothing else moves.
        app.sandbox.as_ref().unwrap().update_knobs(KnobsUpdate { fail_next_refund: Some(true), ..KnobsUpdate::default() }).unwrap();
        let (status, body) = app.post(&refunds, &admin, json!({"amount": 1000, "reason": "refused"})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let failed = events_of(&app, &order_id, "RefundFailed", 1).await;
        assert_eq!(failed[0]["version"], "1.1");
        assert_eq!(failed[0]["payload"]["RefundFailed"]["released"], json!({"amount_minor": 1000, "currency": "CNY"}));
        let (_, after_failure) = app.get(&format!("/v1/orders/{order_id}"), "alice").await;
        assert_eq!(after_failure["status"], "partially_refunded");
        assert_eq!(totals(&after_failure), (Some(3000), Some(0), Some(0)));

        let (status, body) = app.post(&refunds, &admin, json!({"amount": 6900, "reason": "plan cancelled"})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let full = app.poll_until(&order_id, "alice", |body| body["status"] == "refunded").await;
        assert_eq!(totals(&full), (Some(9900), Some(0), Some(0)));

        // What the order showed is what the refund events say they left.
        let refunded = events_of(&app, &order_id, "Refunded", 2).await;
        let left: Vec<&Value> = refunded
            .iter()
            .map(|event| {
                assert_eq!(event["version"], "1.1");
                &event["payload"]["Refunded"]["order_after"]
            })
            .collect();
        assert_eq!(left[0]["status"], "partially_refunded");
        assert_eq!(left[0]["refunded_total"]["amount_minor"], 3000);
        assert_eq!(left[1]["status"], "refunded");
        assert_eq!(left[1]["refunded_total"]["amount_minor"], 9900);
        assert_eq!(left[1]["needs_refund"]["amount_minor"], 0);

        // A replay of the log rebuilds the views the live writers kept.
        audit_is_clean(db).await;
        app.stop().await;
    }
}
