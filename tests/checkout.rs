//! Hosted checkout over HTTP, on both stores: public plans and CORS, the order's QR code,
//! opening a checkout, paying through its link, and everything the link must not open.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use payledger::auth::Role;
use payledger::checkout::origin::Origin;
use payledger::checkout::CheckoutSettings;
use payledger::AppState;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::app::App;
use crate::helpers::{on_both_stores, TestDb};

pub const SHOP: &str = "http://shop.test";

/// Checkouts may send buyers back to the test shop, and its pages may call the API.
pub fn shop_settings(state: &mut AppState) {
    state.checkout = Arc::new(CheckoutSettings {
        cors_origins: vec![Origin::parse(SHOP).unwrap()],
        allowed_redirects: vec![Origin::parse(SHOP).unwrap()],
        ..CheckoutSettings::default()
    });
}

/// Opens a checkout for `user` with `body`, answering its status and JSON.
pub async fn open_checkout(app: &App, token: &str, body: Value) -> (StatusCode, Value) {
    app.post("/v1/checkout/sessions", token, body).await
}

/// The secret part of a checkout URL.
pub fn secret_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

/// Places an order through a checkout link, as the page does.
pub async fn place_through(app: &App, secret: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url(&format!("/checkout/{secret}/orders")))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plans_are_public_and_only_configured_origins_get_cors_headers() {
    let db = TestDb::sqlite().await;
    let plain = App::spawn(&db).await;
    let response = plain
        .client
        .get(plain.url("/v1/plans"))
        .header("origin", SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "no CORS by default"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["plans"][1]["id"], "pro-monthly");
    assert_eq!(body["plans"][1]["amount"], 9900);
    plain.stop().await;
    db.finish().await;

    // Stopping a service closes its store: the configured one gets a database of its own.
    let db = TestDb::sqlite().await;
    let app = App::spawn_configured(&db, shop_settings).await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/orders"))
        .header("origin", SHOP)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], SHOP);
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allowed.contains("authorization"), "{allowed}");

    let listed = app
        .client
        .get(app.url("/v1/plans"))
        .header("origin", SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.headers()["access-control-allow-origin"], SHOP);
    let stranger = app
        .client
        .get(app.url("/v1/plans"))
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), StatusCode::OK);
    assert!(stranger
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    app.stop().await;
    db.finish().await;
}

on_both_stores! {
    async fn an_order_s_qr_code_is_drawn_for_its_owner_only(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("alice").await;
        let id = order["id"].as_str().unwrap();
        let response = app
            .client
            .get(app.url(&format!("/v1/orders/{id}/qr.svg")))
            .bearer_auth(app.token("alice", Role::User))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "image/svg+xml");
        let svg = response.text().await.unwrap();
        assert_eq!(crate::qr_svg::decode(&svg), order["qr_code"].as_str().unwrap());

        let (status, body) = app.get(&format!("/v1/orders/{id}/qr.svg"), "mallory").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "order.not_found");
        let anonymous = app.client.get(app.url(&format!("/v1/orders/{id}/qr.svg"))).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

        app.pay(&order, "").await;
        app.poll_until(id, "alice", |body| body["status"] == "paid").await;
        let (status, body) = app.get(&format!("/v1/orders/{id}/qr.svg"), "alice").await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"]["code"], "order.not_payable");
        app.stop().await;
    }

    async fn a_checkout_link_places_and_follows_its_own_orders_until_paid(db: &TestDb) {
        let app = App::spawn_configured(db, shop_settings).await;
        let token = app.token("carol", Role::User);
        let (status, opened) = open_checkout(&app, &token, json!({
            "plan_id": "pro-monthly",
            "success_url": format!("{SHOP}/thanks"),
            "cancel_url": format!("{SHOP}/pricing"),
        })).await;
        assert_eq!(status, StatusCode::CREATED, "{opened}");
        let url = opened["url"].as_str().unwrap();
        assert!(url.starts_with(&format!("{}/checkout/", app.base)), "{url}");
        assert!(opened["expires_at"].is_string());
        let secret = secret_of(url);
        // Only a digest of the secret is kept.
        let stored: i64 = sqlx::Row::try_get(
            &sqlx::query("SELECT CAST(count(*) AS BIGINT) AS n FROM checkout_sessions WHERE secret_hash = $1")
                .bind(&secret)
                .fetch_one(&db.store.read)
                .await
                .unwrap(),
            "n",
        )
        .unwrap();
        assert_eq!(stored, 0);

        let page = app.client.get(url).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(page.headers()["referrer-policy"], "no-referrer");
        let html = page.text().await.unwrap();
        assert!(html.contains("lang=\"zh-CN\""), "Chinese by default");
        assert!(html.contains("Pro (monthly)"));
        assert!(!html.contains("Enterprise"), "the session names its plan");

        // The page may not pick another plan than the session's.
        let (status, refused) = place_through(&app, &secret, json!({"plan_id": "pro-yearly", "channel": "alipay_qr"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert_eq!(refused["error"]["code"], "checkout.not_this_checkout");
        let (status, missing) = place_through(&app, &secret, json!({})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{missing}");
        assert_eq!(missing["error"]["code"], "checkout.channel_required");

        let (status, order) = place_through(&app, &secret, json!({"channel": "wx_pub_qr"})).await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        assert_eq!(order["status"], "pending");
        assert_eq!(order["amount_yuan"], "99.00");
        assert_eq!(order["channel"], "wx_pub_qr");
        let order_id = order["id"].as_str().unwrap().to_owned();
        // The order is carol's, through the ordinary API too.
        let (status, _) = app.get(&format!("/v1/orders/{order_id}"), "carol").await;
        assert_eq!(status, StatusCode::OK);

        let qr = app.client.get(app.url(order["qr_url"].as_str().unwrap())).send().await.unwrap();
        assert_eq!(qr.status(), StatusCode::OK);
        let (_, polled) = app.get(&format!("/v1/orders/{order_id}"), "carol").await;
        assert_eq!(crate::qr_svg::decode(&qr.text().await.unwrap()), polled["qr_code"].as_str().unwrap());

        // The long-poll by position answers as soon as the payment is recorded.
        let position = order["position"].as_i64().unwrap();
        let follow = app.url(&format!("/checkout/{secret}/orders/{order_id}?after={position}&wait=20"));
        let waiting = tokio::spawn({
            let client = app.client.clone();
            async move {
                let started = std::time::Instant::now();
                let response = client.get(follow).send().await.unwrap();
                (started.elapsed(), response.status(), response.json::<Value>().await.unwrap())
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.pay(&json!({"id": order_id}), "").await;
        let (elapsed, status, paid) = waiting.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        let paid = if paid["status"] == "paid" {
            paid
        } else {
            let again = app.client.get(app.url(&format!("/checkout/{secret}/orders/{order_id}"))).send().await.unwrap();
            again.json::<Value>().await.unwrap()
        };
        assert_eq!(paid["status"], "paid", "{paid}");
        assert!(paid["qr_url"].is_null());
        app.stop().await;
    }

    async fn a_checkout_link_opens_nothing_but_its_own_orders(db: &TestDb) {
        let app = App::spawn_configured(db, shop_settings).await;
        let (_, mine) = open_checkout(&app, &app.token("dave", Role::User), json!({})).await;
        let (_, theirs) = open_checkout(&app, &app.token("erin", Role::User), json!({})).await;
        let mine = secret_of(mine["url"].as_str().unwrap());
        let theirs = secret_of(theirs["url"].as_str().unwrap());
        let (status, order) = place_through(&app, &mine, json!({"plan_id": "pro-yearly", "channel": "alipay_qr"})).await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        let order_id = order["id"].as_str().unwrap();

        for path in [
            format!("/checkout/{theirs}/orders/{order_id}"),
            format!("/checkout/{theirs}/orders/{order_id}/qr.svg"),
        ] {
            let response = app.client.get(app.url(&path)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "order.not_found");
        }
        // An order of the same user placed elsewhere is not the link's either.
        let other = app.create_order("dave").await;
        let response = app
            .client
            .get(app.url(&format!("/checkout/{mine}/orders/{}", other["id"].as_str().unwrap())))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        // A guessed or mangled secret opens nothing.
        // One character off (never the same character: that would be the real secret).
        let last = if mine.ends_with('A') { 'B' } else { 'A' };
        let forged = format!("{}{last}", &mine[..mine.len() - 1]);
        for secret in [forged.as_str(), "x", "..%2F..%2Fv1%2Fplans"] {
            let response = app.client.get(app.url(&format!("/checkout/{secret}/orders/{order_id}"))).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{secret}");
            let page = app.client.get(app.url(&format!("/checkout/{secret}"))).send().await.unwrap();
            assert_eq!(page.status(), StatusCode::NOT_FOUND, "{secret}");
        }
        app.stop().await;
    }

    async fn opening_a_checkout_checks_who_asks_and_where_it_returns(db: &TestDb) {
        let app = App::spawn_configured(db, shop_settings).await;
        let user = app.token("frank", Role::User);
        let admin = app.token("billing-service", Role::Admin);
        let cases = [
            (&user, json!({"success_url": "http://evil.test/steal"}), StatusCode::UNPROCESSABLE_ENTITY, "checkout.redirect_not_allowed"),
            (&user, json!({"cancel_url": "javascript:alert(1)"}), StatusCode::UNPROCESSABLE_ENTITY, "checkout.redirect_not_allowed"),
            (&user, json!({"success_url": "http://shop.test@evil.test/"}), StatusCode::UNPROCESSABLE_ENTITY, "checkout.redirect_not_allowed"),
            (&user, json!({"plan_id": "gold-forever"}), StatusCode::UNPROCESSABLE_ENTITY, "plan.unknown"),
            (&user, json!({"plan_id": "free-monthly"}), StatusCode::UNPROCESSABLE_ENTITY, "order.not_purchasable"),
            (&user, json!({"channel": "cash"}), StatusCode::UNPROCESSABLE_ENTITY, "channel.unknown"),
            (&user, json!({"amount": 1}), StatusCode::UNPROCESSABLE_ENTITY, "request.invalid_body"),
            (&user, json!({"user_id": "grace"}), StatusCode::FORBIDDEN, "auth.forbidden"),
        ];
        for (token, body, status, code) in cases {
            let (got, answer) = open_checkout(&app, token, body.clone()).await;
            assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{body}: {answer}");
        }
        let anonymous = app.client.post(app.url("/v1/checkout/sessions")).json(&json!({})).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

        // An admin (a merchant's service) opens a checkout for a user: the orders are hers.
        let (status, opened) = open_checkout(&app, &admin, json!({"user_id": "grace", "channel": "alipay_qr"})).await;
        assert_eq!(status, StatusCode::CREATED, "{opened}");
        let secret = secret_of(opened["url"].as_str().unwrap());
        let (status, order) = place_through(&app, &secret, json!({"plan_id": "enterprise-monthly"})).await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        let (status, seen) = app.get(&format!("/v1/orders/{}", order["id"].as_str().unwrap()), "grace").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(seen["plan_id"], "enterprise-monthly");
        app.stop().await;
    }

    async fn a_checkout_link_places_a_bounded_number_of_orders(db: &TestDb) {
        let app = App::spawn_configured(db, shop_settings).await;
        let (_, opened) = open_checkout(&app, &app.token("ines", Role::User), json!({"plan_id": "pro-monthly", "channel": "alipay_qr"})).await;
        let secret = secret_of(opened["url"].as_str().unwrap());
        // All at once: the bound holds for concurrent requests too.
        let tasks: Vec<_> = (0..payledger::checkout::SESSION_ORDERS_MAX + 5)
            .map(|_| {
                let client = app.client.clone();
                let url = app.url(&format!("/checkout/{secret}/orders"));
                tokio::spawn(async move { client.post(url).json(&json!({})).send().await.unwrap().status() })
            })
            .collect();
        let mut created = 0_i64;
        for task in tasks {
            let status = task.await.unwrap();
            assert!(status == StatusCode::CREATED || status == StatusCode::CONFLICT, "{status}");
            created += i64::from(status == StatusCode::CREATED);
        }
        assert_eq!(created, payledger::checkout::SESSION_ORDERS_MAX);
        let (status, refused) = place_through(&app, &secret, json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{refused}");
        assert_eq!(refused["error"]["code"], "checkout.too_many_orders");
        app.stop().await;
    }

    async fn an_expired_checkout_link_opens_nothing(db: &TestDb) {
        let app = App::spawn_configured(db, |state| {
            shop_settings(state);
            let mut settings = (*state.checkout).clone();
            settings.session_ttl = Duration::from_secs(1);
            state.checkout = Arc::new(settings);
        })
        .await;
        let (_, opened) = open_checkout(&app, &app.token("heidi", Role::User), json!({"plan_id": "pro-monthly"})).await;
        let secret = secret_of(opened["url"].as_str().unwrap());
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let (status, refused) = place_through(&app, &secret, json!({"channel": "alipay_qr"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
        assert_eq!(refused["error"]["code"], "checkout.session_expired");
        let page = app.client.get(app.url(&format!("/checkout/{secret}?lang=en"))).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
        assert!(page.text().await.unwrap().contains("not valid or has expired"));
        app.stop().await;
    }
}
