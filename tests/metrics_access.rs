//! Who may read `/metrics`, and that it keeps answering when the sums of money pass what a
//! 64-bit integer holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gateways::config::GatewayConfig;
use gateways::pingpp::signature;
use gateways::Secret;
use payledger::auth::{Role, TokenKeys};
use payledger::server::Service;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::app::{sandbox_key, App, SECRET};
use crate::helpers::{on_both_stores, TestDb};

const METRICS_TOKEN: &str = "metrics-token-that-is-long-enough-0123456789";

/// A service that also accepts the metrics token; stopped by sending on the sender.
async fn start(db: &TestDb) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut gateway = GatewayConfig::from_lookup(|_| None, &base).unwrap();
    gateway.sandbox_private_key = Some(sandbox_key().clone());
    let keys = TokenKeys::from_secret(SECRET)
        .with_metrics_token(Some(Secret::new(METRICS_TOKEN.to_owned())));
    let service = Service::start(db.store.clone(), keys, &base, &gateway.into())
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(service.serve(listener, async move {
        let _ = stopped.await;
    }));
    (base, stop)
}

async fn metrics(base: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().get(format!("{base}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

fn code_of(text: &str) -> String {
    serde_json::from_str::<Value>(text).unwrap()["error"]["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

on_both_stores! {
    async fn metrics_need_an_admin_token_or_the_metrics_token(db: &TestDb) {
        let (base, stop) = start(db).await;
        let keys = TokenKeys::from_secret(SECRET);
        let user = keys.issue("alice", Role::User, chrono::Duration::hours(1), chrono::Utc::now()).unwrap();
        let admin = keys.issue("ops", Role::Admin, chrono::Duration::hours(1), chrono::Utc::now()).unwrap();
        let wrong = "x".repeat(METRICS_TOKEN.len());
        for (token, status, code) in [
            (None, StatusCode::UNAUTHORIZED, "auth.missing_token"),
            (Some(user.as_str()), StatusCode::FORBIDDEN, "auth.forbidden"),
            (Some(wrong.as_str()), StatusCode::UNAUTHORIZED, "auth.invalid_token"),
        ] {
            let (answered, text) = metrics(&base, token).await;
            assert_eq!(answered, status, "{text}");
            assert_eq!(code_of(&text), code);
        }
        for token in [METRICS_TOKEN, admin.as_str()] {
            let (status, text) = metrics(&base, Some(token)).await;
            assert_eq!(status, StatusCode::OK, "{text}");
            assert!(text.contains("payledger_log_head_position"), "{text}");
        }
        let _ = stop.send(());
    }

    async fn metrics_still_answer_when_sums_pass_the_largest_64_bit_integer(db: &TestDb) {
        let app = App::spawn(db).await;
        for user in ["huge1", "huge2"] {
            let order = app.create_order(user).await;
            let order_id = order["id"].as_str().unwrap();
            let charge = app.charge_of(order_id).await;
            let body = serde_json::to_vec(&json!({
                "id": format!("evt_huge{}", uuid::Uuid::new_v4().simple()), "object": "event",
                "created": 1_795_000_000, "type": "charge.succeeded",
                "data": { "object": {
                    "id": charge, "object": "charge", "paid": true, "channel": "alipay_qr",
                    "order_no": order_id.replace('-', ""), "amount": i64::MAX, "currency": "cny",
                    "time_paid": 1_795_000_100, "transaction_no": "1", "metadata": {},
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
            assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
            app.poll_until(order_id, user, |body| body["needs_review"] == true).await;
        }
        let admin = app.token("ops", Role::Admin);
        let (status, text) = metrics(&app.base, Some(&admin)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let twice = 2 * i128::from(i64::MAX);
        assert!(
            text.contains(&format!("payledger_money_movements_minor_total{{kind=\"mismatched_payment\"}} {twice}")),
            "{text}"
        );
        assert!(text.contains("payledger_money_movements_total{kind=\"mismatched_payment\"} 2"), "{text}");
        app.stop().await;
    }

}
