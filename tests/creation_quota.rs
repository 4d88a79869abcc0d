//! A user cannot flood the gateway with orders: a per-minute creation rate answered with 429
//! and `Retry-After`, and a cap on orders awaiting payment at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use payledger::auth::Role;
use payledger::ledger::QuotaSettings;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::app::App;
use crate::helpers::on_both_stores;

const PRO: &str = "pro-monthly";
const ENTERPRISE: &str = "enterprise-yearly";

fn order_request(plan: &str, channel: &str) -> Value {
    json!({"plan_id": plan, "channel": channel})
}

on_both_stores! {
    async fn creation_beyond_the_rate_is_refused_with_retry_after_and_writes_nothing(db: &TestDb) {
        let quota = QuotaSettings { per_minute: 3, open_max: 100 };
        let app = App::spawn_with_quota(db, quota).await;
        let token = app.token("rosa", Role::User);
        for _ in 0..3 {
            let (status, body) = app.post("/v1/orders", &token, order_request(PRO, "alipay_qr")).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let head = projections::log::head(&db.store.read).await.unwrap();
        // Every creation request counts, even one the ledger would refuse anyway.
        let response = app
            .client
            .post(app.url("/v1/orders"))
            .bearer_auth(&token)
            .json(&order_request("no-such-plan", "alipay_qr"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=20).contains(&retry_after), "one more after a third of a minute: {retry_after}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "order.rate_limited");
        assert_eq!(projections::log::head(&db.store.read).await.unwrap(), head, "nothing written");
        // Another user keeps an allowance of their own.
        let other = app.token("sami", Role::User);
        let (status, _) = app.post("/v1/orders", &other, order_request(PRO, "alipay_qr")).await;
        assert_eq!(status, StatusCode::CREATED);
        app.stop().await;
    }
}

on_both_stores! {
    async fn at_the_open_order_cap_the_same_purchase_returns_the_open_order(db: &TestDb) {
        let quota = QuotaSettings { per_minute: 100, open_max: 2 };
        let app = App::spawn_with_quota(db, quota).await;
        let token = app.token("tove", Role::User);
        let (status, first) = app.post("/v1/orders", &token, order_request(PRO, "alipay_qr")).await;
        assert_eq!(status, StatusCode::CREATED, "{first}");
        let (status, second) =
            app.post("/v1/orders", &token, order_request(ENTERPRISE, "wx_pub_qr")).await;
        assert_eq!(status, StatusCode::CREATED, "{second}");
        let head = projections::log::head(&db.store.read).await.unwrap();

        let (status, again) = app.post("/v1/orders", &token, order_request(PRO, "alipay_qr")).await;
        assert_eq!(status, StatusCode::OK, "the open order, not a new one: {again}");
        assert_eq!(again["id"], first["id"]);
        assert_eq!(again["qr_code"], first["qr_code"]);
        let (status, refused) =
            app.post("/v1/orders", &token, order_request(PRO, "wx_pub_qr")).await;
        assert_eq!(status, StatusCode::CONFLICT, "{refused}");
        assert_eq!(refused["error"]["code"], "order.too_many_open");
        assert_eq!(projections::log::head(&db.store.read).await.unwrap(), head, "nothing written");

        // Paying one frees a place.
        app.confirm_payment(&first, first["amount"].as_i64().unwrap()).await;
        let first_id = first["id"].as_str().unwrap();
        app.poll_until(first_id, "tove", |order| order["status"] == "paid").await;
        let (status, body) = app.post("/v1/orders", &token, order_request(PRO, "wx_pub_qr")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        app.stop().await;
    }
}
