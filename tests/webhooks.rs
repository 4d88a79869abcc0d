//! Webhooks end to end on both stores: signatures over the raw bytes, duplicates and replays,
//! wrong amounts, events for orders we do not know, and events that arrive too early.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use aggregates::Order;
use cqrs_es::Aggregate;
use gateways::config::GatewayConfig;
use gateways::pingpp::signature;
use projections::log::{self as event_log};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

use crate::app::{pingpp_event_body, sandbox_key, App};
use crate::helpers::on_both_stores;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/gateways/tests/fixtures/pingpp"
);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

fn charge_object(charge_id: &str, order_no: &str, amount: i64) -> Value {
    json!({
        "id": charge_id, "object": "charge", "created": 1_795_000_000, "livemode": false,
        "paid": true, "refunded": false, "app": "app_sandbox", "channel": "alipay_qr",
        "order_no": order_no, "amount": amount, "currency": "cny", "subject": "Pro",
        "body": "Pro membership", "time_paid": 1_795_000_100, "transaction_no": "2026112522001",
        "amount_refunded": 0, "metadata": {}, "credential": {},
    })
}

async fn events_of(app: &App, order_id: &str) -> Vec<String> {
    event_log::read_stream(&app.state.store.read, Order::TYPE, order_id)
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.event_type)
        .collect()
}

async fn inbox_outcome(app: &App, event_id: &str) -> Option<(String, i64)> {
    sqlx::query("SELECT outcome, deliveries FROM gateway_events WHERE event_id = $1")
        .bind(event_id)
        .fetch_optional(&app.state.store.read)
        .await
        .unwrap()
        .map(|row| {
            (
                row.try_get("outcome").unwrap(),
                row.try_get("deliveries").unwrap(),
            )
        })
}

on_both_stores! {
    async fn forged_webhooks_are_refused_and_append_nothing(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("gina").await;
        let order_id = order["id"].as_str().unwrap();
        let charge = app.charge_of(order_id).await;
        let body = pingpp_event_body("evt_forged000001", "charge.succeeded", charge_object(&charge, &order_id.replace('-', ""), 9900));
        let genuine = signature::sign(sandbox_key(), &body);
        let head = event_log::head(&db.store.read).await.unwrap();

        let mut tampered = body.clone();
        let at = tampered.windows(4).position(|window| window == b"9900").unwrap();
        tampered[at] = b'1';
        let other_key = gateways::pingpp::keys::generate().unwrap();
        let cases: Vec<(Vec<u8>, Option<String>, &str)> = vec![
            (tampered, Some(genuine.clone()), "webhook.signature_invalid"),
            (body.clone(), Some(signature::sign(&other_key, &body)), "webhook.signature_invalid"),
            (body.clone(), None, "webhook.signature_missing"),
            (body.clone(), Some("%%% not base64 %%%".to_owned()), "webhook.signature_malformed"),
            ([body.clone(), b"\n".to_vec()].concat(), Some(genuine.clone()), "webhook.signature_invalid"),
        ];
        for (bytes, signature, code) in cases {
            let (status, answer) = app.deliver_pingpp(&bytes, signature.as_deref().as_slice()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
            assert_eq!(answer["error"]["code"], code);
        }
        assert_eq!(event_log::head(&db.store.read).await.unwrap(), head, "a forged webhook appended");
        assert!(inbox_outcome(&app, "evt_forged000001").await.is_none());
        let metrics = app.client.get(app.url("/metrics")).bearer_auth(app.token("ops", payledger::auth::Role::Admin)).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("payledger_webhooks_rejected_total 5"), "{metrics}");

        // The genuine one, for contrast, pays the order.
        let (status, answer) = app.deliver_pingpp(&body, &[&genuine]).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["outcome"], "applied");
        app.stop().await;
    }

    async fn duplicate_deliveries_and_replays_confirm_once(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("hank").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        app.pay(&order, "duplicate=3").await;
        app.poll_until(&order_id, "hank", |body| body["status"] == "paid" && body["membership"]["active"] == true).await;
        let sandbox = app.sandbox.as_ref().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while sandbox.deliveries().delivered < 4 {
            assert!(tokio::time::Instant::now() < deadline, "not every duplicate was delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let types = events_of(&app, &order_id).await;
        assert_eq!(types.iter().filter(|kind| *kind == "PaymentConfirmed").count(), 1, "{types:?}");

        // A genuine webhook replayed later changes nothing either.
        let charge = app.charge_of(&order_id).await;
        let body = pingpp_event_body("evt_replayed00001", "charge.succeeded", charge_object(&charge, &order_id.replace('-', ""), 9900));
        let signed = signature::sign(sandbox_key(), &body);
        let (_, first) = app.deliver_pingpp(&body, &[&signed]).await;
        let (status, again) = app.deliver_pingpp(&body, &[&signed]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(first["outcome"], "duplicate", "the charge was already confirmed");
        assert_eq!(again["outcome"], "duplicate");
        // The redelivery was answered from the inbox row alone: one read, nothing written.
        assert_eq!(inbox_outcome(&app, "evt_replayed00001").await, Some(("duplicate".to_owned(), 1)));
        assert_eq!(events_of(&app, &order_id).await.iter().filter(|kind| *kind == "PaymentConfirmed").count(), 1);
        let memberships: i64 = sqlx::query("SELECT CAST(count(*) AS BIGINT) AS n FROM events WHERE event_type IN ('MembershipActivated', 'MembershipExtended')")
            .fetch_one(&db.store.read).await.unwrap().try_get("n").unwrap();
        assert_eq!(memberships, 1);
        app.stop().await;
    }

    async fn a_wrong_amount_is_kept_for_review_and_never_pays(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("ivan").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        app.pay(&order, "amount=100").await;
        let flagged = app.poll_until(&order_id, "ivan", |body| body["needs_review"] == true).await;
        assert_eq!(flagged["status"], "pending");
        assert!(flagged["membership"].is_null());
        let types = events_of(&app, &order_id).await;
        assert!(types.contains(&"PaymentAmountMismatch".to_owned()), "{types:?}");
        assert!(!types.contains(&"PaymentConfirmed".to_owned()));
        let (_, history) = app.get("/v1/transactions", "ivan").await;
        assert_eq!(history["items"][0]["kind"], "mismatched_payment");
        assert_eq!(history["items"][0]["amount"], 100);
        let metrics = app.client.get(app.url("/metrics")).bearer_auth(app.token("ops", payledger::auth::Role::Admin)).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("payledger_money_movements_total{kind=\"mismatched_payment\"} 1"), "{metrics}");
        app.stop().await;
    }

    async fn a_refund_notice_before_its_payment_is_redelivered_later(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("jane").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        let charge = app.charge_of(&order_id).await;
        let refund = json!({
            "id": "re_early0000000000000001", "object": "refund", "amount": 9900,
            "status": "succeeded", "charge": charge, "charge_order_no": order_id.replace('-', ""),
            "description": "early", "time_succeed": 1_795_000_200,
            "metadata": { "refund_id": uuid::Uuid::new_v4().to_string() },
        });
        let body = pingpp_event_body("evt_early00000001", "refund.succeeded", refund);
        let before = events_of(&app, &order_id).await;
        let (status, answer) = app.deliver_pingpp(&body, &[&signature::sign(sandbox_key(), &body)]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        assert_eq!(answer["error"]["code"], "webhook.retry_later");
        assert_eq!(answer["outcome"], "deferred");
        assert_eq!(events_of(&app, &order_id).await, before, "nothing appended");
        assert_eq!(inbox_outcome(&app, "evt_early00000001").await, Some(("deferred".to_owned(), 1)));

        // The payment still goes through normally afterwards.
        app.pay(&order, "").await;
        app.poll_until(&order_id, "jane", |body| body["status"] == "paid").await;
        app.stop().await;
    }

    async fn events_for_unknown_orders_are_kept_for_reconciliation(db: &TestDb) {
        // Configured as production Ping++ with the genuine published key.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let key_path = format!("{FIXTURES}/public_key.pem");
        let gateway = GatewayConfig::from_lookup(
            |name| match name {
                "PAYMENT_PROVIDER" => Some("pingpp".to_owned()),
                "PINGPP_API_BASE" => Some("http://127.0.0.1:9/v1".to_owned()),
                "PINGPP_APP_ID" => Some("app_vcPcqDeS88ixrPlu".to_owned()),
                "PINGPP_API_KEY" => Some("sk_test_unused".to_owned()),
                "PINGPP_PUBLIC_KEY_PATH" => Some(key_path.clone()),
                _ => None,
            },
            &base,
        )
        .unwrap();
        let app = App::spawn_with(db, listener, base, &gateway).await;
        let body = fixture("body.raw");
        let signed = String::from_utf8(fixture("signature.b64")).unwrap();
        let (status, answer) = app.deliver_pingpp(&body, &[signed.trim()]).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["outcome"], "unmatched");
        let kept: Vec<u8> = sqlx::query("SELECT body FROM gateway_events WHERE event_id = 'evt_eYa58Wd44Glerl8AgfYfd1sL'")
            .fetch_one(&db.store.read).await.unwrap().try_get("body").unwrap();
        assert_eq!(kept, body, "the raw body is kept for reconciliation");
        for tampered in ["body_tampered.raw", "body_trailing_newline.raw"] {
            let (status, _) = app.deliver_pingpp(&fixture(tampered), &[signed.trim()]).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{tampered}");
        }
        app.stop().await;
    }

    async fn event_types_we_do_not_act_on_are_acknowledged_and_kept(db: &TestDb) {
        let app = App::spawn(db).await;
        let summary = pingpp_event_body("evt_summary000001", "summary.daily.available", json!({"object": "summary"}));
        let (status, answer) = app.deliver_pingpp(&summary, &[&signature::sign(sandbox_key(), &summary)]).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["outcome"], "ignored");
        assert_eq!(inbox_outcome(&app, "evt_summary000001").await, Some(("ignored".to_owned(), 1)));
        app.stop().await;
    }
}

#[test]
fn the_verify_command_tells_genuine_from_forged() {
    let binary = env!("CARGO_BIN_EXE_payledger");
    let signed = String::from_utf8(fixture("signature.b64")).unwrap();
    let run = |body: &str, key: &str| {
        let launch = harness::Launch::new(binary)
            .args(["webhook", "verify", "--provider", "pingpp", "--public-key"])
            .arg(format!("{FIXTURES}/{key}"))
            .args(["--signature", signed.trim(), "--body"])
            .arg(format!("{FIXTURES}/{body}"));
        harness::run(&launch).unwrap().status.code()
    };
    assert_eq!(run("body.raw", "public_key.pem"), Some(0));
    assert_eq!(run("body_tampered.raw", "public_key.pem"), Some(1));
    assert_eq!(run("body_trailing_newline.raw", "public_key.pem"), Some(1));
    assert_eq!(run("body.raw", "no_such_key.pem"), Some(2));
}
