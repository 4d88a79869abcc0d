//! The HTTP API driven over a real port, on both stores: a whole purchase through the
//! sandbox gateway, every error status, idempotency, concurrency, and replay equality.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use chrono::Utc;
use payledger::auth::{Role, TokenKeys};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::app::{audit_is_clean, App};
use crate::helpers::on_both_stores;

on_both_stores! {
    async fn a_whole_purchase_through_the_sandbox_pays_activates_refunds_and_replays(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("alice").await;
        assert_eq!(order["status"], "pending");
        assert_eq!(order["amount"], 9900);
        assert_eq!(order["currency"], "CNY");
        assert!(order["qr_code"].as_str().unwrap().contains("/sandbox/charges/ch_"));
        // The QR credential leads to the sandbox's payment page.
        let page = app.client.get(order["qr_code"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("99.00"));
        assert!(order["expires_at"].is_string());
        let order_id = order["id"].as_str().unwrap().to_owned();

        // Read-your-writes: the order is visible at once to its owner.
        let (status, polled) = app.get(&format!("/v1/orders/{order_id}"), "alice").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(polled["status"], "pending");

        app.confirm_payment(&order, 9900).await;
        let paid = app
            .poll_until(&order_id, "alice", |body| {
                body["status"] == "paid" && body["membership"]["active"] == true
            })
            .await;
        assert_eq!(paid["membership"]["tier"], "pro");
        assert!(paid["qr_code"].is_null());

        let (status, membership) = app.get("/v1/membership", "alice").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(membership["active"], true);
        assert_eq!(membership["tier"], "pro");
        assert_eq!(membership["orders"][0]["order_id"], order_id.as_str());

        // Admin partial refund; the gateway confirms it by webhook.
        let admin = app.token("ops", Role::Admin);
        let (status, refund) = app
            .post(&format!("/v1/orders/{order_id}/refunds"), &admin, json!({"amount": 3000, "reason": "goodwill"}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{refund}");
        assert_eq!(refund["status"], "pending");
        // The sandbox completes the refund and sends the signed refund.succeeded webhook.
        let refunded = app
            .poll_until(&order_id, "alice", |body| body["status"] == "partially_refunded")
            .await;
        assert_eq!(refunded["refunded_amount"], 3000);

        let (status, history) = app.get("/v1/transactions", "alice").await;
        assert_eq!(status, StatusCode::OK);
        let kinds: Vec<&str> = history["items"].as_array().unwrap().iter().map(|item| item["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["refund", "payment"]);
        assert_eq!(history["items"][1]["amount"], 9900);
        assert_eq!(history["items"][0]["amount"], 3000);

        let (status, events) = app.get(&format!("/v1/orders/{order_id}/events"), "alice").await;
        assert_eq!(status, StatusCode::OK);
        let types: Vec<&str> = events["events"].as_array().unwrap().iter().map(|event| event["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["OrderCreated", "ChargeRequested", "PaymentConfirmed", "RefundRequested", "Refunded"]);
        assert_eq!(events["events"][2]["metadata"]["source"], "webhook");
        // The customer learns that staff refunded, not which member of staff.
        assert_eq!(events["events"][3]["metadata"]["actor"], "admin");
        let staff_view: Value = app.client.get(app.url(&format!("/v1/orders/{order_id}/events")))
            .bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
        assert_eq!(staff_view["events"][3]["metadata"]["actor"], "admin:ops");

        audit_is_clean(db).await;
        app.stop().await;
    }

    async fn bad_requests_get_clear_errors_and_write_nothing(db: &TestDb) {
        let app = App::spawn(db).await;
        let user = app.token("bob", Role::User);
        let head_before = projections::log::head(&db.store.read).await.unwrap();

        let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
            (app.client.get(app.url("/v1/membership")), StatusCode::UNAUTHORIZED, "auth.missing_token"),
            (app.client.get(app.url("/v1/membership")).bearer_auth("not.a.token"), StatusCode::UNAUTHORIZED, "auth.invalid_token"),
            (app.client.get(app.url("/v1/membership")).bearer_auth(TokenKeys::from_secret(b"another-secret-another-secret-another").issue("bob", Role::User, chrono::Duration::hours(1), Utc::now()).unwrap()), StatusCode::UNAUTHORIZED, "auth.invalid_token"),
            (app.client.post(app.url("/v1/orders")).bearer_auth(&user).json(&json!({"plan_id": "gold-forever", "channel": "alipay_qr"})), StatusCode::UNPROCESSABLE_ENTITY, "plan.unknown"),
            (app.client.post(app.url("/v1/orders")).bearer_auth(&user).json(&json!({"plan_id": "free-monthly", "channel": "alipay_qr"})), StatusCode::UNPROCESSABLE_ENTITY, "order.not_purchasable"),
            (app.client.post(app.url("/v1/orders")).bearer_auth(&user).json(&json!({"plan_id": "pro-monthly", "channel": "cash"})), StatusCode::UNPROCESSABLE_ENTITY, "channel.unknown"),
            (app.client.post(app.url("/v1/orders")).bearer_auth(&user).json(&json!({"plan_id": "pro-monthly", "channel": "alipay_qr", "amount": 1})), StatusCode::UNPROCESSABLE_ENTITY, "request.invalid_body"),
            (app.client.post(app.url("/v1/orders")).bearer_auth(&user).json(&json!({"plan_id": 7, "channel": "alipay_qr"})), StatusCode::UNPROCESSABLE_ENTITY, "request.invalid_body"),
            (app.client.post(app.url("/v1/orders")).bearer_auth(&user).header("content-type", "application/json").body("{\"plan_id\": "), StatusCode::BAD_REQUEST, "request.malformed_json"),
            (app.client.post(app.url("/v1/orders")).bearer_auth(&user).header("content-type", "text/plain").body("{}"), StatusCode::UNSUPPORTED_MEDIA_TYPE, "request.unsupported_media_type"),
            (app.client.post(app.url("/v1/orders")).bearer_auth(&user).header("content-type", "application/json").body(vec![b' '; 64 * 1024]), StatusCode::PAYLOAD_TOO_LARGE, "request.too_large"),
            (app.client.get(app.url("/v1/orders/..%2F..%2Fetc%2Fpasswd")).bearer_auth(&user), StatusCode::NOT_FOUND, "order.not_found"),
            (app.client.get(app.url(&format!("/v1/orders/{}", uuid::Uuid::new_v4()))).bearer_auth(&user), StatusCode::NOT_FOUND, "order.not_found"),
            (app.client.get(app.url("/v1/transactions?cursor=abc")).bearer_auth(&user), StatusCode::BAD_REQUEST, "transactions.invalid_cursor"),
            (app.client.get(app.url("/v1/transactions?limit=0")).bearer_auth(&user), StatusCode::UNPROCESSABLE_ENTITY, "transactions.invalid_limit"),
            (app.client.get(app.url("/v1/transactions?user_id=alice")).bearer_auth(&user), StatusCode::FORBIDDEN, "auth.forbidden"),
            (app.client.get(app.url("/v1/nowhere")).bearer_auth(&user), StatusCode::NOT_FOUND, "route.not_found"),
            (app.client.get(app.url("/v1/orders/%FF%FE")).bearer_auth(&user), StatusCode::BAD_REQUEST, "request.malformed_path"),
            (app.client.get(app.url("/v1/transactions?limit=abc")).bearer_auth(&user), StatusCode::BAD_REQUEST, "request.malformed_query"),
            (app.client.get(app.url("/v1/transactions?colour=red")).bearer_auth(&user), StatusCode::BAD_REQUEST, "request.malformed_query"),
            (app.client.post(app.url("/v1/webhooks/pingpp")).header("content-type", "application/json").body(vec![b'x'; 128 * 1024]), StatusCode::PAYLOAD_TOO_LARGE, "request.too_large"),
        ];
        for (request, status, code) in cases {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), status, "expected {code}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(body["error"]["message"].as_str().is_some_and(|message| !message.is_empty()));
        }
        assert_eq!(projections::log::head(&db.store.read).await.unwrap(), head_before, "a refused request wrote to the log");

        // Another user's order is not found; a user cannot refund; over-refund is a conflict.
        let order = app.create_order("alice").await;
        let order_id = order["id"].as_str().unwrap();
        let (status, body) = app.get(&format!("/v1/orders/{order_id}"), "bob").await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("order.not_found")));
        let (status, body) = app.post(&format!("/v1/orders/{order_id}/refunds"), &app.token("alice", Role::User), json!({"amount": 1, "reason": "x"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("auth.forbidden")));
        let admin = app.token("ops", Role::Admin);
        let (status, body) = app.post(&format!("/v1/orders/{order_id}/refunds"), &admin, json!({"amount": 100, "reason": "unpaid"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("order.invalid_transition")));
        app.confirm_payment(&order, 9900).await;
        app.poll_until(order_id, "alice", |body| body["status"] == "paid").await;
        let (status, body) = app.post(&format!("/v1/orders/{order_id}/refunds"), &admin, json!({"amount": 9901, "reason": "too much"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("order.refund_exceeds_paid")));
        let (status, body) = app.post(&format!("/v1/orders/{order_id}/refunds"), &admin, json!({"amount": -5, "reason": "negative"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("refund.invalid_amount")));
        let (status, body) = app.post(&format!("/v1/orders/{order_id}/refunds"), &admin, json!({"amount": 9223372036854775808u64, "reason": "overflow"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("request.invalid_body")));
        app.stop().await;
    }

    async fn an_idempotency_key_returns_the_same_order(db: &TestDb) {
        let app = App::spawn(db).await;
        let token = app.token("carol", Role::User);
        let send = |body: Value| {
            app.client
                .post(app.url("/v1/orders"))
                .bearer_auth(&token)
                .header("idempotency-key", "checkout-42")
                .json(&body)
                .send()
        };
        let first: Value = send(json!({"plan_id": "pro-yearly", "channel": "wx_pub_qr"})).await.unwrap().json().await.unwrap();
        let second: Value = send(json!({"plan_id": "pro-yearly", "channel": "wx_pub_qr"})).await.unwrap().json().await.unwrap();
        assert_eq!(first["id"], second["id"]);
        let other = send(json!({"plan_id": "enterprise-yearly", "channel": "wx_pub_qr"})).await.unwrap();
        assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: Value = other.json().await.unwrap();
        assert_eq!(body["error"]["code"], "idempotency.key_reused");
        let orders = projections::log::read_after(&db.store.read, 0, 500).await.unwrap()
            .iter().filter(|event| event.event_type == "OrderCreated").count();
        assert_eq!(orders, 1);
        app.stop().await;
    }

    async fn polling_sends_an_etag_and_long_polls_for_a_change(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("dave").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        let token = app.token("dave", Role::User);
        let response = app.client.get(app.url(&format!("/v1/orders/{order_id}"))).bearer_auth(&token).send().await.unwrap();
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        let position: i64 = response.headers()["x-ledger-position"].to_str().unwrap().parse().unwrap();
        let again = app.client.get(app.url(&format!("/v1/orders/{order_id}"))).bearer_auth(&token).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

        // Nothing happens: the long poll times out with 304.
        let quiet = app.client.get(app.url(&format!("/v1/orders/{order_id}?after={position}&wait=1"))).bearer_auth(&token).send().await.unwrap();
        assert_eq!(quiet.status(), StatusCode::NOT_MODIFIED);

        // A payment arrives while the poll waits: it answers with the paid order.
        let waiting = {
            let client = app.client.clone();
            let url = app.url(&format!("/v1/orders/{order_id}?after={position}&wait=10"));
            let token = token.clone();
            tokio::spawn(async move { client.get(url).bearer_auth(token).send().await.unwrap() })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = tokio::time::Instant::now();
        app.confirm_payment(&order, 9900).await;
        let answered = waiting.await.unwrap();
        assert_eq!(answered.status(), StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(5));
        let body: Value = answered.json().await.unwrap();
        assert_eq!(body["status"], "paid");
        app.stop().await;
    }

    async fn parallel_orders_of_one_user_all_reach_the_history(db: &TestDb) {
        let app = std::sync::Arc::new(App::spawn(db).await);
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let order = app.create_order("erin").await;
                app.confirm_payment(&order, 9900).await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // Payments arrive by webhook, asynchronously: poll the history as a client would.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let page = loop {
            let (status, page) = app.get("/v1/transactions?limit=100", "erin").await;
            assert_eq!(status, StatusCode::OK);
            if page["items"].as_array().unwrap().len() >= 16 || tokio::time::Instant::now() > deadline {
                break page;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 16);
        assert_eq!(items.iter().map(|item| item["amount"].as_i64().unwrap()).sum::<i64>(), 16 * 9900);
        // Paging with the cursor walks the same entries.
        let (_, first) = app.get("/v1/transactions?limit=10", "erin").await;
        let cursor = first["next_cursor"].as_str().unwrap();
        let (_, rest) = app.get(&format!("/v1/transactions?limit=10&cursor={cursor}"), "erin").await;
        assert_eq!(first["items"].as_array().unwrap().len() + rest["items"].as_array().unwrap().len(), 16);
        audit_is_clean(db).await;
        std::sync::Arc::try_unwrap(app).ok().unwrap().stop().await;
    }
}

on_both_stores! {
    async fn orders_outside_the_configured_amount_limits_are_refused(db: &TestDb) {
        let limits = payledger::limits::OrderLimits { min_minor: 100, max_minor: 100_000 };
        let app = App::spawn_limited(db, limits).await;
        let token = app.token("quinn", Role::User);
        let (status, body) = app
            .post("/v1/orders", &token, json!({"plan_id": "enterprise-yearly", "channel": "alipay_qr"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["code"], "order.amount_out_of_range");
        assert_eq!(projections::log::head(&db.store.read).await.unwrap(), 0, "nothing written");
        let (status, _) = app
            .post("/v1/orders", &token, json!({"plan_id": "pro-monthly", "channel": "alipay_qr"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        app.stop().await;
    }
}

on_both_stores! {
    async fn the_root_is_a_small_static_page_for_a_person(db: &TestDb) {
        let app = App::spawn(db).await;
        let response = app.client.get(app.url("/")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        assert_eq!(response.headers()["content-security-policy"], "default-src 'none'");
        let page = response.text().await.unwrap();
        assert!(page.contains("<h1>payledger</h1>") && page.contains("/healthz"), "{page}");
        let (status, body) = app.post("/", "", json!({})).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"]["code"], "request.method_not_allowed");
        app.stop().await;
    }
}
