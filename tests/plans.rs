//! The merchant's plan catalog: a file's plans are sold (periods in days too), and an order
//! keeps the price it was created with when the catalog changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Utc};
use payledger::auth::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::app::App;
use crate::helpers::on_both_stores;

const CATALOG: &str = r#"
[[plans]]
id = "pro-monthly"
name = "Pro (monthly)"
tier = "pro"
period = { months = 1 }
amount = 12900
currency = "CNY"

[[plans]]
id = "trial-week"
name = "Trial week"
tier = "pro"
period = { days = 7 }
amount = 990
currency = "CNY"
"#;

on_both_stores! {
    async fn a_catalog_change_never_alters_an_existing_order(db: &TestDb) {
        let before = App::spawn(db).await;
        let old = before.create_order("lena").await;
        assert_eq!(old["amount"], 9_900);
        before.stop().await;

        let catalog = payledger::catalog::parse_toml(CATALOG).unwrap();
        let app = App::spawn_with_catalog(db, catalog).await;
        let (status, plans) = app.get("/v1/plans", "lena").await;
        assert_eq!(status, StatusCode::OK);
        let ids: Vec<&str> = plans["plans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|plan| plan["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["pro-monthly", "trial-week"]);
        let (_, kept) = app
            .get(&format!("/v1/orders/{}", old["id"].as_str().unwrap()), "lena")
            .await;
        assert_eq!(kept["amount"], 9_900, "{kept}");
        let new = app.create_order("lena").await;
        assert_eq!(new["amount"], 12_900);

        let (status, trial) = app
            .post(
                "/v1/orders",
                &app.token("lena", Role::User),
                json!({"plan_id": "trial-week", "channel": "alipay_qr"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{trial}");
        assert_eq!(trial["amount"], 990);
        app.pay(&trial, "").await;
        let trial_id = trial["id"].as_str().unwrap();
        app.poll_until(trial_id, "lena", |body| body["status"] == "paid").await;
        let (_, membership) = app.get("/v1/membership", "lena").await;
        let ends_at: DateTime<Utc> = membership["ends_at"].as_str().unwrap().parse().unwrap();
        let week = Utc::now() + chrono::Duration::days(7);
        assert!((ends_at - week).num_seconds().abs() < 60, "{membership}");
        let (status, refused) = app
            .post(
                "/v1/orders",
                &app.token("lena", Role::User),
                json!({"plan_id": "pro-yearly", "channel": "alipay_qr"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        app.stop().await;
    }
}
