//! When the gateway fails, the client gets a stable code and a plain message; the gateway's
//! address and the network error stay in the log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gateways::config::GatewayConfig;
use payledger::auth::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::app::App;
use crate::helpers::on_both_stores;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/gateways/tests/fixtures/pingpp"
);

on_both_stores! {
    async fn an_unreachable_gateway_answers_503_without_its_address(db: &TestDb) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        // Nothing listens on the discard port.
        let gateway = GatewayConfig::from_lookup(
            |name| match name {
                "PAYMENT_PROVIDER" => Some("pingpp".to_owned()),
                "PINGPP_API_BASE" => Some("http://127.0.0.1:9/v1".to_owned()),
                "PINGPP_APP_ID" => Some("app_down".to_owned()),
                "PINGPP_API_KEY" => Some("sk_test_down".to_owned()),
                "PINGPP_PUBLIC_KEY_PATH" => Some(format!("{FIXTURES}/public_key.pem")),
                _ => None,
            },
            &base,
        )
        .unwrap();
        let app = App::spawn_with(db, listener, base, &gateway).await;
        let token = app.token("vera", Role::User);
        let (status, body) = app
            .post("/v1/orders", &token, json!({"plan_id": "pro-monthly", "channel": "alipay_qr"}))
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "gateway.unreachable");
        let message = body["error"]["message"].as_str().unwrap();
        for leak in ["127.0.0.1", ":9", "refused", "tcp", "error sending"] {
            assert!(!message.to_lowercase().contains(leak), "{leak} leaked in {message}");
        }
        app.stop().await;
    }
}
