//! Nothing lost, nothing twice: bursts of identical webhooks across two servers on one
//! database, racing refunds, concurrent idempotent requests, and a server that stops while
//! another carries on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use gateways::pingpp::signature;
use payledger::auth::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

use crate::app::{audit_is_clean, sandbox_key, App};
use crate::helpers::on_both_stores;

/// Deliveries of one event in a burst, spread over two servers.
const BURST: usize = 100;

fn signed_event(event_id: &str, event_type: &str, object: Value) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(&json!({
        "id": event_id, "object": "event", "created": 1_795_000_000, "livemode": false,
        "type": event_type, "data": { "object": object }, "pending_webhooks": 0, "request": "iar_burst",
    }))
    .unwrap();
    let signature = signature::sign(sandbox_key(), &body);
    (body, signature)
}

/// Delivers the same bytes `BURST` times at once, alternating between the two servers;
/// returns the statuses.
async fn burst(servers: [&App; 2], body: &[u8], signature: &str) -> Vec<StatusCode> {
    let mut tasks = Vec::new();
    for index in 0..BURST {
        let app = servers[index % 2];
        let request = app
            .client
            .post(app.url("/v1/webhooks/pingpp"))
            .header("content-type", "application/json")
            .header("x-pingplusplus-signature", signature)
            .body(body.to_vec());
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

async fn count_events(app: &App, event_type: &str) -> i64 {
    sqlx::query("SELECT CAST(count(*) AS BIGINT) AS n FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(&app.state.store.read)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

on_both_stores! {
    async fn a_burst_of_identical_webhooks_on_two_servers_pays_and_refunds_once(db: &TestDb) {
        let first = App::spawn(db).await;
        let second = App::spawn_second(db, &first).await;
        let order = first.create_order("kate").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        // The customer pays; the gateway's own delivery is held back so that the burst below
        // is the only notice.
        first.pay(&order, "drop=1").await;
        let charge = first.charge_of(&order_id).await;
        let order_no = order_id.replace('-', "");
        let (body, signature) = signed_event(
            "evt_burst_payment01",
            "charge.succeeded",
            json!({
                "id": charge, "object": "charge", "paid": true, "channel": "alipay_qr",
                "order_no": order_no, "amount": 9900, "currency": "cny", "time_paid": 1_795_000_100,
            }),
        );
        let statuses = burst([&first, &second], &body, &signature).await;
        assert!(statuses.iter().all(StatusCode::is_success), "{statuses:?}");
        assert_eq!(count_events(&first, "PaymentConfirmed").await, 1);
        second.poll_until(&order_id, "kate", |body| body["membership"]["active"] == true).await;
        assert_eq!(count_events(&first, "MembershipActivated").await, 1);

        // The same for a refund's completion.
        let admin = first.token("ops", Role::Admin);
        let (status, refund) = first
            .post(&format!("/v1/orders/{order_id}/refunds"), &admin, json!({"amount": 9900, "reason": "burst"}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{refund}");
        let (body, signature) = signed_event(
            "evt_burst_refund001",
            "refund.succeeded",
            json!({
                "id": refund["gateway_refund_id"], "object": "refund", "amount": 9900,
                "status": "succeeded", "charge": charge, "charge_order_no": order_no,
                "time_succeed": 1_795_000_200, "metadata": { "refund_id": refund["id"] },
            }),
        );
        let statuses = burst([&first, &second], &body, &signature).await;
        assert!(statuses.iter().all(StatusCode::is_success), "{statuses:?}");
        first.poll_until(&order_id, "kate", |body| body["status"] == "refunded").await;
        assert_eq!(count_events(&first, "Refunded").await, 1);
        // A full refund takes the membership back, once.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while count_events(&first, "MembershipRevoked").await == 0 {
            assert!(tokio::time::Instant::now() < deadline, "membership never revoked");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(count_events(&first, "MembershipRevoked").await, 1);
        audit_is_clean(db).await;
        second.stop().await;
    }

    async fn racing_refunds_never_fail_on_conflicts_or_over_refund(db: &TestDb) {
        let first = Arc::new(App::spawn(db).await);
        let second = Arc::new(App::spawn_second(db, &first).await);
        let order = first.create_order("liam").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        first.pay(&order, "").await;
        first.poll_until(&order_id, "liam", |body| body["status"] == "paid").await;

        // 60 refunds of 200 fen race over two servers: 49 fit into 9,900, the rest must be
        // refused as over-refunds, and none may fail for any other reason.
        let admin = first.token("ops", Role::Admin);
        let mut tasks = Vec::new();
        for index in 0..60 {
            let app = if index % 2 == 0 { first.clone() } else { second.clone() };
            let admin = admin.clone();
            let order_id = order_id.clone();
            tasks.push(tokio::spawn(async move {
                app.post(&format!("/v1/orders/{order_id}/refunds"), &admin, json!({"amount": 200, "reason": "race"})).await
            }));
        }
        let mut accepted = 0;
        for task in tasks {
            let (status, body) = task.await.unwrap();
            match status {
                StatusCode::ACCEPTED => accepted += 1,
                StatusCode::CONFLICT => {
                    let code = body["error"]["code"].as_str().unwrap();
                    assert!(code == "order.refund_exceeds_paid" || code == "order.too_many_refunds", "{body}");
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert!((1..=49).contains(&accepted), "{accepted}");
        let requested = count_events(&first, "RefundRequested").await;
        assert_eq!(requested, accepted);
        Arc::try_unwrap(second).ok().unwrap().stop().await;
    }

    async fn concurrent_requests_with_one_idempotency_key_create_one_order(db: &TestDb) {
        let app = Arc::new(App::spawn(db).await);
        let token = app.token("mona", Role::User);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let app = app.clone();
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                let response = app
                    .client
                    .post(app.url("/v1/orders"))
                    .bearer_auth(token)
                    .header("idempotency-key", "burst-key-1")
                    .json(&json!({"plan_id": "pro-monthly", "channel": "alipay_qr"}))
                    .send()
                    .await
                    .unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            }));
        }
        let mut ids = std::collections::HashSet::new();
        for task in tasks {
            let (status, body) = task.await.unwrap();
            match status {
                StatusCode::CREATED => {
                    ids.insert(body["id"].as_str().unwrap().to_owned());
                }
                StatusCode::CONFLICT => assert_eq!(body["error"]["code"], "idempotency.in_progress"),
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!(ids.len(), 1);
        assert_eq!(count_events(&app, "OrderCreated").await, 1);
    }

    async fn when_one_server_stops_the_other_keeps_the_views_current(db: &TestDb) {
        let first = App::spawn(db).await;
        let second = App::spawn_second(db, &first).await;
        let order = second.create_order("nora").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        // Stop the second server (its projector and process manager with it).
        second.stop().await;
        first.pay(&order, "").await;
        let paid = first
            .poll_until(&order_id, "nora", |body| body["status"] == "paid" && body["membership"]["active"] == true)
            .await;
        assert_eq!(paid["membership"]["tier"], "pro");
        audit_is_clean(db).await;
    }
}

on_both_stores! {
    async fn a_server_serving_polls_from_memory_sees_what_another_server_recorded(db: &TestDb) {
        let first = App::spawn(db).await;
        let second = App::spawn_second(db, &first).await;
        let order = first.create_order("pete").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        // The second server answers polls, so it keeps the pending order in memory.
        for _ in 0..3 {
            let (status, body) = second.get(&format!("/v1/orders/{order_id}"), "pete").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["status"], "pending");
        }
        // The first server records the payment; the second must not keep serving "pending".
        first.pay(&order, "").await;
        let paid = second
            .poll_until(&order_id, "pete", |body| body["status"] == "paid" && body["membership"]["active"] == true)
            .await;
        assert_eq!(paid["membership"]["tier"], "pro");
        second.stop().await;
    }
}

on_both_stores! {
    async fn an_idempotency_key_left_by_a_request_that_died_is_taken_over(db: &TestDb) {
        let app = App::spawn(db).await;
        // A request claimed the key two minutes ago, then its process died before recording
        // the order.
        let two_minutes_ago = projections::schema::timestamp(&(chrono::Utc::now() - chrono::Duration::minutes(2)));
        sqlx::query(
            "INSERT INTO idempotency_keys (user_id, scope, key, request_hash, resource_id, created_at) \
             VALUES ('wren', 'create_order', 'died-mid-request', $1, $2, $3)",
        )
        .bind(payledger_request_hash())
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(two_minutes_ago)
        .execute(&db.store.read)
        .await
        .unwrap();
        let response = app
            .client
            .post(app.url("/v1/orders"))
            .bearer_auth(app.token("wren", Role::User))
            .header("idempotency-key", "died-mid-request")
            .json(&json!({"plan_id": "pro-monthly", "channel": "alipay_qr"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let first: Value = response.json().await.unwrap();
        // From now on the key names that order.
        let again: Value = app
            .client
            .post(app.url("/v1/orders"))
            .bearer_auth(app.token("wren", Role::User))
            .header("idempotency-key", "died-mid-request")
            .json(&json!({"plan_id": "pro-monthly", "channel": "alipay_qr"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(first["id"], again["id"]);
        assert_eq!(count_events(&app, "OrderCreated").await, 1);
    }
}

/// The digest the API stores for `{"plan_id": "pro-monthly", "channel": "alipay_qr"}`:
/// length-prefixed fields, SHA-256, hex.
fn payledger_request_hash() -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for field in ["pro-monthly", "alipay_qr"] {
        digest.update(field.len().to_le_bytes());
        digest.update(field.as_bytes());
    }
    digest
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
