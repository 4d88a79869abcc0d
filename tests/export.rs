//! `payledger export`: the history as it stood at an instant, ending with the head it was
//! built from.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use payledger::audit::export::{export, Format, Window};
use serde_json::{json, Value};
use sqlx::Row;

use crate::app::App;
use crate::helpers::{on_both_stores, TestDb};

async fn lines(db: &TestDb, window: Window, format: Format) -> Vec<String> {
    let mut out = Vec::new();
    export(&db.store.read, window, format, &mut out)
        .await
        .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(ToOwned::to_owned)
        .collect()
}

on_both_stores! {
    async fn an_export_as_of_before_a_refund_shows_the_payment_without_it(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("alice").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        app.pay(&order, "").await;
        app.poll_until(&order_id, "alice", |body| body["status"] == "paid").await;
        let before_refund = chrono::Utc::now();
        let paid_head: i64 = projections::log::head(&db.store.read).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let admin = app.token("admin", payledger::auth::Role::Admin);
        let (status, body) = app
            .post(&format!("/v1/orders/{order_id}/refunds"), &admin, json!({"amount": 3000, "reason": "goodwill"}))
            .await;
        assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
        app.poll_until(&order_id, "alice", |body| body["status"] == "partially_refunded").await;

        let then = lines(db, Window { as_of: before_refund, from: None, to: None }, Format::Json).await;
        let entries: Vec<Value> = then.iter().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(entries.len(), 2, "{then:?}");
        assert_eq!(entries[0]["kind"], "payment");
        assert_eq!(entries[0]["order_id"], order_id.as_str());
        assert_eq!(entries[0]["amount_minor"], order["amount"]);
        let hash: Vec<u8> = sqlx::query("SELECT hash FROM events WHERE position = $1")
            .bind(paid_head).fetch_one(&db.store.read).await.unwrap().try_get("hash").unwrap();
        assert_eq!(entries[1]["head"]["position"], paid_head);
        assert_eq!(entries[1]["head"]["hash"], projections::chain::to_hex(&hash));

        let now = lines(db, Window { as_of: chrono::Utc::now(), from: None, to: None }, Format::Csv).await;
        assert_eq!(now.len(), 4, "header, payment, refund, head: {now:?}");
        assert!(now[1].contains(",payment,"), "{}", now[1]);
        assert!(now[2].contains(",refund,") && now[2].ends_with(",3000,CNY"), "{}", now[2]);
        let head = projections::log::head(&db.store.read).await.unwrap();
        assert!(now[3].starts_with(&format!("#head,{head},")), "{}", now[3]);

        // A window after the payment keeps only the refund.
        let refunds = lines(db, Window { as_of: chrono::Utc::now(), from: Some(before_refund), to: None }, Format::Csv).await;
        assert_eq!(refunds.len(), 3, "{refunds:?}");
        assert!(refunds[1].contains(",refund,"));
        app.stop().await;
    }
}
