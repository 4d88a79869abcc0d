//! Signed webhooks that could not be true, end to end on both stores: a success that is not
//! paid, two signature headers, a payment time in the far future, and NUL characters in the
//! gateway's text, none of which may confirm a payment wrongly or fail with a 5xx.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aggregates::Order;
use cqrs_es::Aggregate;
use gateways::pingpp::signature;
use payledger::ledger::settle;
use payledger::store::Source;
use projections::log::{self as event_log};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

use crate::app::{pingpp_event_body, sandbox_key, App};
use crate::helpers::{on_both_stores, TestDb};

/// The charge of `order` as the sandbox would report it paid.
async fn paid_charge(app: &App, order: &Value) -> Value {
    let order_id = order["id"].as_str().unwrap();
    json!({
        "id": app.charge_of(order_id).await, "object": "charge", "created": 1_795_000_000,
        "livemode": false, "paid": true, "refunded": false, "app": "app_sandbox",
        "channel": "alipay_qr", "order_no": order_id.replace('-', ""),
        "amount": order["amount"], "currency": "cny", "subject": "Pro", "body": "Pro membership",
        "time_paid": 1_795_000_100, "transaction_no": "2026112522001", "amount_refunded": 0,
        "metadata": {}, "credential": {},
    })
}

async fn signed_delivery(app: &App, body: &[u8]) -> (StatusCode, Value) {
    app.deliver_pingpp(body, &[&signature::sign(sandbox_key(), body)])
        .await
}

async fn events_of(app: &App, order_id: &str) -> Vec<String> {
    event_log::read_stream(&app.state.store.read, Order::TYPE, order_id)
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.event_type)
        .collect()
}

on_both_stores! {
    async fn a_charge_succeeded_that_is_not_paid_never_confirms(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("unpaid").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        let mut charge = paid_charge(&app, &order).await;
        charge["paid"] = json!(false);
        charge["time_paid"] = Value::Null;
        let head = event_log::head(&db.store.read).await.unwrap();
        let body = pingpp_event_body("evt_unpaid00000001", "charge.succeeded", charge);
        let (status, answer) = signed_delivery(&app, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["code"], "webhook.malformed");
        assert_eq!(event_log::head(&db.store.read).await.unwrap(), head);
        let (_, shown) = app.get(&format!("/v1/orders/{order_id}"), "unpaid").await;
        assert_eq!(shown["status"], "pending", "{shown}");
        assert!(!events_of(&app, &order_id).await.contains(&"PaymentConfirmed".to_owned()));
        app.stop().await;
    }

    async fn another_orders_paid_charge_is_never_money_of_a_failed_order(db: &TestDb) {
        let app = App::spawn(db).await;
        let paid = app.create_order("twice").await;
        let paid_id = paid["id"].as_str().unwrap().to_owned();
        app.pay(&paid, "").await;
        app.poll_until(&paid_id, "twice", |body| body["status"] == "paid").await;

        let failed = app.create_order("twice").await;
        let failed_id = failed["id"].as_str().unwrap().to_owned();
        let mut failure = paid_charge(&app, &failed).await;
        failure["paid"] = json!(false);
        failure["time_paid"] = Value::Null;
        failure["failure_code"] = json!("USER_CANCEL");
        let body = pingpp_event_body("evt_failed0000001", "charge.failed", failure);
        let (status, answer) = signed_delivery(&app, &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        app.poll_until(&failed_id, "twice", |body| body["status"] == "failed").await;
        let before = events_of(&app, &failed_id).await;

        // The first order's paid charge, named with the failed order's number.
        let mut reused = paid_charge(&app, &paid).await;
        reused["order_no"] = json!(failed_id.replace('-', ""));
        let body = pingpp_event_body("evt_reused0000001", "charge.succeeded", reused);
        let (status, answer) = signed_delivery(&app, &body).await;
        assert_eq!(status, StatusCode::OK, "kept for review, not redelivered: {answer}");
        assert_eq!(answer["outcome"], "unmatched");
        assert_eq!(events_of(&app, &failed_id).await, before, "no late money recorded");
        let (_, shown) = app.get(&format!("/v1/orders/{failed_id}"), "twice").await;
        assert_eq!(shown["status"], "failed");
        assert_eq!(shown["needs_refund_amount"], 0, "{shown}");
        let (_, history) = app.get("/v1/transactions", "twice").await;
        assert_eq!(history["items"].as_array().unwrap().len(), 1, "the money counted once: {history}");
        app.stop().await;
    }

    async fn a_refund_success_for_another_amount_charge_or_refund_is_never_recorded(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("refundee").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        app.pay(&order, "").await;
        app.poll_until(&order_id, "refundee", |body| body["status"] == "paid").await;
        // The sandbox confirms refunds late, so the forged notices arrive first.
        let knobs = sandbox::KnobsUpdate { refund_delay_ms: Some(1_500), ..Default::default() };
        app.sandbox.as_ref().unwrap().update_knobs(knobs).unwrap();
        let admin = app.token("ops", payledger::auth::Role::Admin);
        let (status, refund) = app
            .post(&format!("/v1/orders/{order_id}/refunds"), &admin, json!({"amount": 100, "reason": "goodwill"}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{refund}");
        let refund_id = refund["id"].as_str().unwrap().to_owned();
        let charge = app.charge_of(&order_id).await;
        let other_order = app.create_order("refundee").await;
        let other_charge = app.charge_of(other_order["id"].as_str().unwrap()).await;
        let before = events_of(&app, &order_id).await;

        let forged = |event_id: &str, amount: i64, charge: &str| {
            let refund = json!({
                "id": format!("re_forged{event_id}"), "object": "refund", "amount": amount,
                "status": "succeeded", "charge": charge, "charge_order_no": order_id.replace('-', ""),
                "description": "forged", "time_succeed": 1_795_000_200,
                "metadata": { "refund_id": refund_id },
            });
            pingpp_event_body(&format!("evt_{event_id}"), "refund.succeeded", refund)
        };
        for body in [forged("toomuch000001", 999_999, &charge), forged("othercharge01", 100, &other_charge)] {
            let (status, answer) = signed_delivery(&app, &body).await;
            assert_eq!(status, StatusCode::OK, "kept for review, not redelivered: {answer}");
            assert_eq!(answer["outcome"], "unmatched");
        }
        assert_eq!(events_of(&app, &order_id).await, before, "no refund recorded");

        // The genuine notice completes the refund as requested.
        let refunded = app
            .poll_until(&order_id, "refundee", |body| body["refunded_amount"] == 100)
            .await;
        assert_eq!(refunded["status"], "partially_refunded");
        app.stop().await;
    }

    async fn two_signature_headers_are_refused_as_ambiguous(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("twice").await;
        let body = pingpp_event_body("evt_twosignatures01", "charge.succeeded", paid_charge(&app, &order).await);
        let genuine = signature::sign(sandbox_key(), &body);
        let head = event_log::head(&db.store.read).await.unwrap();
        for signatures in [[genuine.as_str(), genuine.as_str()], [genuine.as_str(), "AAAA"]] {
            let (status, answer) = app.deliver_pingpp(&body, &signatures).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
            assert_eq!(answer["error"]["code"], "webhook.signature_ambiguous");
        }
        assert_eq!(event_log::head(&db.store.read).await.unwrap(), head, "an ambiguous webhook appended");
        // The same body with one signature is genuine.
        let (status, answer) = app.deliver_pingpp(&body, &[&genuine]).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["outcome"], "applied");
        app.stop().await;
    }

    async fn a_payment_time_in_the_far_future_is_bounded(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("future").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        let mut charge = paid_charge(&app, &order).await;
        charge["time_paid"] = json!(253_402_300_799_i64);
        let body = pingpp_event_body("evt_future00000001", "charge.succeeded", charge);
        let before = chrono::Utc::now();
        let (status, answer) = signed_delivery(&app, &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["outcome"], "applied");
        let payload = event_log::read_stream(&app.state.store.read, Order::TYPE, &order_id)
            .await
            .unwrap()
            .into_iter()
            .find(|event| event.event_type == "PaymentConfirmed")
            .map(|event| event.payload.to_string())
            .unwrap();
        assert!(!payload.contains("9999"), "the year 9999 was recorded: {payload}");
        assert!(payload.contains(&before.format("%Y-%m-%d").to_string()), "{payload}");
        app.stop().await;
    }

    async fn nul_characters_in_the_gateways_text_never_cause_a_server_error(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("nul").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        let mut charge = paid_charge(&app, &order).await;
        charge["transaction_no"] = json!("2026\u{0}1125");
        charge["failure_msg"] = json!("\u{0}");
        charge["subject"] = json!("Pro\u{0}");
        let body = pingpp_event_body("evt_nul00000000001", "charge.succeeded", charge);
        assert!(String::from_utf8_lossy(&body).contains("\\u0000"));
        let (status, answer) = signed_delivery(&app, &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["outcome"], "applied");
        assert!(events_of(&app, &order_id).await.contains(&"PaymentConfirmed".to_owned()));

        let other = pingpp_event_body("evt_nul00000000002", "summary\u{0}.daily", json!({ "object": "x\u{0}" }));
        let (status, answer) = signed_delivery(&app, &other).await;
        assert!(status.is_success(), "{status} {answer}");
        app.stop().await;
    }

    async fn kept_webhook_bodies_come_back_byte_for_byte(db: &TestDb) {
        let app = App::spawn(db).await;
        // A signed event of a type we do not act on, with a field we never read holding bytes
        // that are not UTF-8: verified, acknowledged and kept as received.
        let mut body = pingpp_event_body("evt_bytes000000001", "summary.daily.available", json!({ "object": "summary" }));
        let close = body.pop().unwrap();
        assert_eq!(close, b'}');
        body.extend_from_slice(b",\"note\":\"caf\xe9 \xff\xfe\\u0000\"}");
        assert!(std::str::from_utf8(&body).is_err());
        let (status, answer) = signed_delivery(&app, &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["outcome"], "ignored");
        assert_eq!(kept_body(db, "evt_bytes000000001").await, body);

        // A NUL byte no JSON gateway sends raw, through the same settlement every door uses,
        // for an event that matches no order.
        let raw = b"\x00 not utf-8: \xc3\x28 \x00".to_vec();
        let event = gateways::GatewayEvent::Other {
            event_id: aggregates::GatewayEventId::parse("evt_bytes000000002").unwrap(),
            event_type: "transfer.succeeded".to_owned(),
        };
        let evidence = settle::Evidence {
            body: &raw,
            protocol: "pingpp",
            signature_headers: &[],
            key_fingerprint: None,
        };
        let settled = settle::settle(&app.state, "pingpp", &event, &evidence, Source::Webhook, "test").await.unwrap();
        assert_eq!(settled.outcome, settle::Outcome::Ignored);
        assert_eq!(kept_body(db, "evt_bytes000000002").await, raw);
        app.stop().await;
    }
}

async fn kept_body(db: &TestDb, event_id: &str) -> Vec<u8> {
    sqlx::query("SELECT body FROM gateway_events WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(&db.store.read)
        .await
        .unwrap()
        .try_get("body")
        .unwrap()
}
