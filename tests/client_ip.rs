//! The payer's address sent to the gateway: a client cannot choose it with
//! `X-Forwarded-For`; a configured proxy can name it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use payledger::api::client_ip::TrustedProxies;
use payledger::auth::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::app::App;
use crate::helpers::on_both_stores;

/// Creates an order with the given `X-Forwarded-For` and returns the address its charge was
/// requested with.
async fn charged_client_ip(app: &App, user: &str, forwarded_for: &str) -> String {
    let response = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(app.token(user, Role::User))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"plan_id": "pro-monthly", "channel": "alipay_qr"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let order: Value = response.json().await.unwrap();
    let charge_id = app.charge_of(order["id"].as_str().unwrap()).await;
    let charge = app.sandbox.as_ref().unwrap().charge(&charge_id).unwrap();
    charge["client_ip"].as_str().unwrap().to_owned()
}

on_both_stores! {
    async fn forwarded_for_is_believed_only_from_a_trusted_proxy(db: &TestDb) {
        let direct = App::spawn(db).await;
        assert_eq!(
            charged_client_ip(&direct, "uma", "203.0.113.9").await,
            "127.0.0.1",
            "a direct client's own header is ignored"
        );
        let proxied = App::spawn_configured(db, |state| {
            state.trusted_proxies =
                std::sync::Arc::new(TrustedProxies::parse("127.0.0.0/8").unwrap());
        })
        .await;
        assert_eq!(
            charged_client_ip(&proxied, "uma", "198.51.100.1, 203.0.113.9").await,
            "203.0.113.9",
            "the hop our proxy appended, not the one the client wrote"
        );
        proxied.stop().await;
        direct.stop().await;
    }
}
