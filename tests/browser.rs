//! The hosted checkout in a real browser (headless Chromium through WebDriver): the code it
//! shows decodes to the charge's credential, a payment turns the page to success without a
//! reload, an expired code offers a new one, cancel goes back to the shop, one link opens no
//! other user's order, markup in a plan's name stays text, and a phone's width is enough.
//! Screenshots of each state are kept among the test artifacts (see `webdriver.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use aggregates::{ChargeId, Money, OrderCommand, Period, Plan, PlanCatalog, PlanId, Tier};
use chrono::Utc;
use payledger::auth::Role;
use payledger::checkout::origin::Origin;
use payledger::checkout::CheckoutSettings;
use payledger::store::{Actor, EventMetadata, Source};
use payledger::AppState;
use serde_json::json;

use crate::app::App;
use crate::checkout::{open_checkout, place_through, secret_of};
use crate::helpers::TestDb;
use crate::webdriver::Browser;

/// A phone's width, in CSS pixels.
const PHONE_WIDTH: u32 = 375;
const PHONE_HEIGHT: u32 = 812;
/// The checkout's promise: the page shows the payment within this long of it being made.
const SUCCESS_SHOWN_WITHIN: Duration = Duration::from_secs(3);
/// How long a page gets to load and ask for its first code.
const PAGE_READY: Duration = Duration::from_secs(10);

/// Checkouts may return to this service's own origin (the test's "shop").
fn own_origin(state: &mut AppState) {
    let origin = Origin::parse(&state.public_url).unwrap();
    state.checkout = Arc::new(CheckoutSettings {
        allowed_redirects: vec![origin],
        ..CheckoutSettings::default()
    });
}

/// The pending order's credential as its owner sees it through the API.
async fn credential(app: &App, order_id: &str, user: &str) -> String {
    let (_, order) = app.get(&format!("/v1/orders/{order_id}"), user).await;
    order["qr_code"].as_str().unwrap().to_owned()
}

/// What the QR code the page shows decodes to (the image the page displays, read back).
async fn shown_code(app: &App, browser: &Browser) -> String {
    let source = browser
        .attribute("#qr", "src")
        .await
        .expect("the code has an image");
    let svg = app
        .client
        .get(app.url(&source))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    crate::qr_svg::decode(&svg)
}

/// The page fits the viewport: nothing to scroll sideways.
async fn fits_the_width(browser: &Browser) {
    let sizes = browser
        .execute(
            "return [window.innerWidth, document.documentElement.scrollWidth];",
            json!([]),
        )
        .await;
    assert_eq!(sizes[0], PHONE_WIDTH, "{sizes}");
    assert!(
        sizes[1].as_u64().unwrap() <= u64::from(PHONE_WIDTH),
        "scrolls sideways: {sizes}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_page_shows_the_charge_s_code_and_turns_to_success_without_a_reload() {
    let db = TestDb::sqlite().await;
    let app = App::spawn_configured(&db, own_origin).await;
    let (status, opened) = open_checkout(
        &app,
        &app.token("ivan", Role::User),
        json!({
            "plan_id": "pro-monthly",
            "channel": "alipay_qr",
            "success_url": app.url("/shop/thanks"),
            "cancel_url": app.url("/shop/pricing"),
        }),
    )
    .await;
    assert_eq!(status, 201, "{opened}");
    let browser = Browser::start(PHONE_WIDTH, PHONE_HEIGHT, "zh-CN").await;
    browser.goto(opened["url"].as_str().unwrap()).await;
    browser.wait_for_state("pay", PAGE_READY).await;
    let order_id = browser.text("#order-id").await;
    assert_eq!(browser.text("#amount").await, "99.00");
    assert_eq!(browser.text("#plan-name").await, "Pro (monthly)");
    assert_eq!(browser.text_content("#status").await, "等待支付…");
    assert!(
        browser.text("#countdown").await.starts_with("14:")
            || browser.text("#countdown").await.starts_with("15:")
    );
    assert_eq!(
        shown_code(&app, &browser).await,
        credential(&app, &order_id, "ivan").await
    );
    fits_the_width(&browser).await;
    browser.screenshot("1-pay").await;

    // A marker a reload would wipe.
    browser
        .execute("window.stillTheSamePage = true; return null;", json!([]))
        .await;
    app.pay(&json!({ "id": order_id }), "").await;
    let shown_after = browser.wait_for_state("paid", SUCCESS_SHOWN_WITHIN).await;
    assert!(shown_after < SUCCESS_SHOWN_WITHIN, "{shown_after:?}");
    let same_page = browser
        .execute("return window.stillTheSamePage === true;", json!([]))
        .await;
    assert_eq!(same_page, true, "the page reloaded");
    assert_eq!(browser.text_content("#status").await, "支付成功");
    assert!(!browser.text("#member-until").await.is_empty());
    assert!(
        browser.text("#cancel").await.is_empty(),
        "nothing to cancel once paid"
    );
    let back = browser.attribute("#success-link", "href").await.unwrap();
    assert_eq!(
        back,
        format!("{}?order_id={order_id}", app.url("/shop/thanks"))
    );
    fits_the_width(&browser).await;
    browser.screenshot("2-paid").await;
    // Then back to the shop, with the order's id.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while browser.current_url().await != back {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page did not return to the shop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.quit().await;
    app.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_code_offers_a_new_one_and_cancel_returns_to_the_shop() {
    let db = TestDb::sqlite().await;
    let app = App::spawn_configured(&db, own_origin).await;
    let (_, opened) = open_checkout(
        &app,
        &app.token("judy", Role::User),
        json!({
            "plan_id": "pro-yearly",
            "channel": "wx_pub_qr",
            "cancel_url": app.url("/healthz"),
        }),
    )
    .await;
    let browser = Browser::start(PHONE_WIDTH, PHONE_HEIGHT, "en-US").await;
    browser.goto(opened["url"].as_str().unwrap()).await;
    browser.wait_for_state("pay", PAGE_READY).await;
    let first = browser.text("#order-id").await;
    let first_code = shown_code(&app, &browser).await;

    // The reconciler's way of closing an unpaid order, past its expiry.
    let metadata = EventMetadata {
        request_id: "test-expire".to_owned(),
        actor: Actor::System,
        source: Source::Reconciler,
        gateway_event_id: None,
        recorded_at: Utc::now(),
    };
    let later = Utc::now() + chrono::Duration::hours(1);
    app.state
        .orders
        .execute(&first, OrderCommand::Expire { at: later }, &metadata)
        .await
        .unwrap();
    browser
        .wait_for_state("expired", SUCCESS_SHOWN_WITHIN)
        .await;
    assert_eq!(
        browser.text_content("#status").await,
        "This code has expired"
    );
    browser.screenshot("3-expired").await;

    browser
        .click("[data-panel=expired] [data-action=retry]")
        .await;
    browser.wait_for_state("pay", PAGE_READY).await;
    let second = browser.text("#order-id").await;
    assert_ne!(second, first, "a new order");
    let second_code = shown_code(&app, &browser).await;
    assert_ne!(second_code, first_code, "a new code");
    assert_eq!(second_code, credential(&app, &second, "judy").await);
    browser.screenshot("4-new-code").await;

    browser.click("#cancel").await;
    let deadline = tokio::time::Instant::now() + PAGE_READY;
    while browser.current_url().await != app.url("/healthz") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "cancel did not return to the shop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.quit().await;
    app.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_payment_says_so_and_offers_a_new_code() {
    let db = TestDb::sqlite().await;
    let app = App::spawn_configured(&db, own_origin).await;
    let (_, opened) = open_checkout(
        &app,
        &app.token("pia", Role::User),
        json!({
            "plan_id": "enterprise-monthly",
            "channel": "alipay_qr",
        }),
    )
    .await;
    let browser = Browser::start(PHONE_WIDTH, PHONE_HEIGHT, "en-US").await;
    browser.goto(opened["url"].as_str().unwrap()).await;
    browser.wait_for_state("pay", PAGE_READY).await;
    let first = browser.text("#order-id").await;
    let failed = OrderCommand::FailPayment {
        charge_id: ChargeId::parse(&app.charge_of(&first).await).unwrap(),
        gateway_event_id: None,
        failure_code: Some("card_declined".to_owned()),
        failure_message: Some("declined".to_owned()),
        at: Utc::now(),
    };
    let metadata = EventMetadata {
        request_id: "test-fail".to_owned(),
        actor: Actor::Gateway,
        source: Source::Webhook,
        gateway_event_id: None,
        recorded_at: Utc::now(),
    };
    app.state
        .orders
        .execute(&first, failed, &metadata)
        .await
        .unwrap();
    browser.wait_for_state("failed", SUCCESS_SHOWN_WITHIN).await;
    assert_eq!(
        browser.text_content("#status").await,
        "The payment did not go through"
    );
    browser.screenshot("8-failed").await;
    browser
        .click("[data-panel=failed] [data-action=retry]")
        .await;
    browser.wait_for_state("pay", PAGE_READY).await;
    assert_ne!(browser.text("#order-id").await, first, "a new order");
    assert_eq!(browser.text("#amount").await, "499.00");
    browser.quit().await;
    app.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_user_s_link_does_not_open_another_s_order() {
    let db = TestDb::sqlite().await;
    let app = App::spawn_configured(&db, own_origin).await;
    let (_, mine) = open_checkout(
        &app,
        &app.token("ken", Role::User),
        json!({"plan_id": "pro-monthly"}),
    )
    .await;
    let (_, theirs) = open_checkout(&app, &app.token("lena", Role::User), json!({})).await;
    let mine = secret_of(mine["url"].as_str().unwrap());
    let theirs = secret_of(theirs["url"].as_str().unwrap());
    let (_, order) = place_through(&app, &mine, json!({"channel": "alipay_qr"})).await;
    let order_id = order["id"].as_str().unwrap();

    let browser = Browser::start(PHONE_WIDTH, PHONE_HEIGHT, "en-US").await;
    browser
        .goto(&app.url(&format!("/checkout/result/{order_id}#{theirs}")))
        .await;
    browser.wait_for_state("gone", PAGE_READY).await;
    assert!(
        browser.find("#qr[src]").await.is_none(),
        "no code of another's order"
    );
    browser.screenshot("5-other-link").await;

    // The owner's link opens the same result page.
    browser
        .goto(&app.url(&format!("/checkout/result/{order_id}#{mine}")))
        .await;
    browser.wait_for_state("pay", PAGE_READY).await;
    assert_eq!(browser.text("#order-id").await, order_id);
    browser.quit().await;
    app.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn markup_in_a_plan_s_name_is_shown_as_text() {
    const NAME: &str = "<script>window.injected = 1</script><b>Pro</b> & \"friends\"";
    let db = TestDb::sqlite().await;
    let app = App::spawn_configured(&db, |state| {
        own_origin(state);
        let plans = vec![Plan {
            id: PlanId::parse("pro-hostile").unwrap(),
            name: NAME.to_owned(),
            tier: Tier::Pro,
            period: Period::Monthly,
            price: Money::from_unsigned(1_234, aggregates::Currency::Cny),
            on_sale: true,
        }];
        state.catalog = Arc::new(PlanCatalog::from_plans(plans).unwrap());
    })
    .await;
    let (status, opened) = open_checkout(&app, &app.token("mia", Role::User), json!({})).await;
    assert_eq!(status, 201, "{opened}");
    let browser = Browser::start(PHONE_WIDTH, PHONE_HEIGHT, "en-US").await;
    browser
        .goto(&format!("{}?lang=en", opened["url"].as_str().unwrap()))
        .await;
    browser.wait_for_state("choose", PAGE_READY).await;
    assert_eq!(browser.text("label.option .name").await, NAME);
    fits_the_width(&browser).await;
    browser.screenshot("6-choose").await;
    browser.click("#choose-form button[type=submit]").await;
    browser.wait_for_state("pay", PAGE_READY).await;
    assert_eq!(browser.text("#plan-name").await, NAME);
    assert_eq!(browser.text("#amount").await, "12.34");
    let injected = browser
        .execute(
            "return [typeof window.injected, document.querySelectorAll('main b').length];",
            json!([]),
        )
        .await;
    assert_eq!(
        injected,
        json!(["undefined", 0]),
        "the name was read as markup"
    );
    browser.quit().await;
    app.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_long_poll_fails_the_page_polls_every_3_s_and_still_sees_the_payment() {
    let db = TestDb::sqlite().await;
    let app = App::spawn_configured(&db, own_origin).await;
    let (_, opened) = open_checkout(&app, &app.token("olga", Role::User), json!({})).await;
    let browser = Browser::start(PHONE_WIDTH, PHONE_HEIGHT, "en-US").await;
    browser.goto(opened["url"].as_str().unwrap()).await;
    browser.wait_for_state("choose", PAGE_READY).await;
    // A proxy that cuts long requests, as some do: every long poll fails at once.
    let refuse_long_polls = "const original = window.fetch; window.longPollsRefused = 0; \
        window.fetch = function (url) { \
          if (String(url).indexOf('after=') >= 0) { \
            window.longPollsRefused += 1; return Promise.reject(new TypeError('cut')); } \
          return original.apply(this, arguments); }; return null;";
    browser.execute(refuse_long_polls, json!([])).await;
    browser.click("#choose-form button[type=submit]").await;
    browser.wait_for_state("pay", PAGE_READY).await;
    let order_id = browser.text("#order-id").await;
    app.pay(&json!({ "id": order_id }), "").await;
    // One fallback poll interval, and a second for the browser and the webhook.
    browser
        .wait_for_state("paid", Duration::from_secs(3) + Duration::from_secs(2))
        .await;
    let refused = browser
        .execute("return window.longPollsRefused;", json!([]))
        .await;
    assert!(
        refused.as_u64().unwrap() >= 1,
        "the long poll was never tried: {refused}"
    );
    browser.quit().await;
    app.stop().await;
    db.finish().await;
}

/// A merchant's page on another origin that opens `checkout_url` with `embed.js` and writes
/// what the modal reported into `#result`.
fn shop_page(service: &str, checkout_url: &str) -> String {
    format!(
        r#"<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1"></head><body><p id="result">open</p>
<script src="{service}/checkout/embed.js"></script>
<script>
PayledgerCheckout.open({checkout_url:?}, {{
  onSuccess: function (orderId) {{ document.getElementById('result').textContent = 'paid ' + orderId; }},
  onCancel: function () {{ document.getElementById('result').textContent = 'cancelled'; }}
}});
</script></body></html>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embed_js_opens_the_checkout_in_a_modal_and_reports_the_payment_to_the_shop() {
    let shop = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shop_origin = format!("http://{}", shop.local_addr().unwrap());
    let db = TestDb::sqlite().await;
    let allowed = shop_origin.clone();
    let app = App::spawn_configured(&db, move |state| {
        state.checkout = Arc::new(CheckoutSettings {
            allowed_redirects: vec![Origin::parse(&allowed).unwrap()],
            ..CheckoutSettings::default()
        });
    })
    .await;
    let (_, opened) = open_checkout(
        &app,
        &app.token("noah", Role::User),
        json!({
            "plan_id": "pro-monthly",
            "channel": "alipay_qr",
        }),
    )
    .await;
    let page = shop_page(&app.base, opened["url"].as_str().unwrap());
    let shop_server = tokio::spawn(async move {
        let router = axum::Router::new().route(
            "/",
            axum::routing::get(move || async move { axum::response::Html(page) }),
        );
        axum::serve(shop, router).await.unwrap();
    });

    let browser = Browser::start(PHONE_WIDTH, PHONE_HEIGHT, "en-US").await;
    browser.goto(&format!("{shop_origin}/")).await;
    browser.enter_frame("iframe").await;
    browser.wait_for_state("pay", PAGE_READY).await;
    let order_id = browser.text("#order-id").await;
    browser.leave_frames().await;
    browser.screenshot("7-embedded").await;

    app.pay(&json!({ "id": order_id }), "").await;
    let expected = format!("paid {order_id}");
    let deadline = tokio::time::Instant::now() + SUCCESS_SHOWN_WITHIN;
    while browser.text("#result").await != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shop was not told of the payment"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(browser.find("iframe").await.is_none(), "the modal closed");
    browser.quit().await;
    shop_server.abort();
    app.stop().await;
    db.finish().await;
}
