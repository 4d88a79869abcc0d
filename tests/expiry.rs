//! Expiry closes the charge at the gateway before the order: a closed QR code takes no more
//! money, a charge paid before the close is recorded as a payment instead of an expiry, a
//! gateway that cannot be reached leaves the order for the next pass, and a pass that died
//! between the close and the append is repaired by the next one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aggregates::ChargeId;
use chrono::Utc;
use gateways::CloseOutcome;
use payledger::process::reconciler;
use reqwest::StatusCode;
use serde_json::Value;

use crate::app::App;
use crate::helpers::on_both_stores;
use crate::reconciler::{count_of, events_of, EXPIRY_ONLY};

/// Presses the sandbox's pay button without knobs: the answer's status and body.
async fn try_to_pay(app: &App, sandbox_base: &str, charge: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .post(format!("{sandbox_base}/sandbox/charges/{charge}/pay"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// A TCP relay to `target` that the test can cut: going down ends the connections open
/// through it (a client's pooled ones too), and while down every new one is dropped at once,
/// as a gateway that went away.
struct Relay {
    base: String,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn to(target: &str) -> Self {
        let target = target.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(true));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (switch, connections) = (Arc::clone(&up), Arc::clone(&open));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !switch.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let relayed = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.lock().unwrap().push(relayed.abort_handle());
            }
        });
        Self { base, up, open }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for connection in self.open.lock().unwrap().drain(..) {
                connection.abort();
            }
        }
    }
}

on_both_stores! {
    async fn an_expired_orders_charge_is_closed_and_can_no_longer_be_paid(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("ines").await;
        let order_id = order["id"].as_str().unwrap().to_owned();

        let later = Utc::now() + chrono::Duration::minutes(16);
        let report = reconciler::run_once_at(&app.state, &EXPIRY_ONLY, later).await.unwrap();
        assert_eq!((report.checked, report.expired, report.charges_closed), (1, 1, 1), "{report}");
        assert_eq!((report.confirmed, report.gateway_errors, report.failed), (0, 0, 0), "{report}");
        app.poll_until(&order_id, "ines", |body| body["status"] == "expired").await;

        // The sandbox's own expiry is still fifteen minutes away: only the close refuses it.
        let charge = app.charge_of(&order_id).await;
        let (status, body) = try_to_pay(&app, &app.base, &charge).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.to_string().contains("closed"), "{body}");
        assert_eq!(count_of(&app, &order_id, "LatePaymentReceived").await, 0);

        // Nothing is left to close.
        let again = reconciler::run_once_at(&app.state, &EXPIRY_ONLY, later).await.unwrap();
        assert_eq!((again.expired, again.charges_closed), (0, 0), "{again}");
        assert_eq!(count_of(&app, &order_id, "OrderExpired").await, 1);
        crate::app::audit_is_clean(db).await;
        app.stop().await;
    }

    async fn a_pass_that_died_after_closing_is_repaired_by_the_next(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("jon").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        // The pass closed the charge, then the process was killed before OrderExpired.
        let charge = ChargeId::parse(&app.charge_of(&order_id).await).unwrap();
        let gateway = app.state.gateway_for(aggregates::Channel::AlipayQr).unwrap();
        assert_eq!(gateway.close_charge(&charge).await.unwrap(), CloseOutcome::Closed);
        assert_eq!(count_of(&app, &order_id, "OrderExpired").await, 0);

        let later = Utc::now() + chrono::Duration::minutes(16);
        let report = reconciler::run_once_at(&app.state, &EXPIRY_ONLY, later).await.unwrap();
        assert_eq!((report.expired, report.charges_closed, report.failed), (1, 1, 0), "{report}");
        app.poll_until(&order_id, "jon", |body| body["status"] == "expired").await;
        assert_eq!(count_of(&app, &order_id, "OrderExpired").await, 1);
        app.stop().await;
    }

    async fn a_charge_paid_before_the_close_is_recorded_as_a_payment_not_an_expiry(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("kim").await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        // Paid at the gateway; its webhook is lost.
        app.pay(&order, "drop=1").await;

        let later = Utc::now() + chrono::Duration::minutes(16);
        let report = reconciler::run_once_at(&app.state, &EXPIRY_ONLY, later).await.unwrap();
        assert_eq!((report.checked, report.confirmed), (1, 1), "{report}");
        assert_eq!((report.expired, report.charges_closed, report.failed), (0, 0, 0), "{report}");
        let paid = app.poll_until(&order_id, "kim", |body| body["status"] == "paid").await;
        assert_eq!(paid["membership"]["active"], true);
        assert_eq!(count_of(&app, &order_id, "OrderExpired").await, 0);
        let events = events_of(&app, &order_id).await;
        let confirmed = events.iter().find(|event| event.event_type == "PaymentConfirmed").unwrap();
        assert_eq!(confirmed.metadata["source"], "reconciler");

        let again = reconciler::run_once_at(&app.state, &EXPIRY_ONLY, later).await.unwrap();
        assert_eq!((again.confirmed, again.expired), (0, 0), "{again}");
        crate::app::audit_is_clean(db).await;
        app.stop().await;
    }

    async fn an_unreachable_gateway_leaves_the_order_pending_until_the_next_pass(db: &TestDb) {
        // The sandbox lives in the first server; the second reaches it through a relay.
        let first = App::spawn(db).await;
        let relay = Relay::to(&first.base).await;
        let second = App::spawn_second_via(db, &format!("{}/sandbox/v1", relay.base)).await;
        let order = second.create_order("lou").await;
        let order_id = order["id"].as_str().unwrap().to_owned();

        relay.set_up(false);
        let later = Utc::now() + chrono::Duration::minutes(16);
        let down = reconciler::run_once_at(&second.state, &EXPIRY_ONLY, later).await.unwrap();
        assert_eq!((down.checked, down.gateway_errors), (1, 1), "{down}");
        assert_eq!((down.expired, down.charges_closed, down.failed), (0, 0, 0), "{down}");
        assert_eq!(count_of(&second, &order_id, "OrderExpired").await, 0);
        let charge = second.charge_of(&order_id).await;

        relay.set_up(true);
        let up = reconciler::run_once_at(&second.state, &EXPIRY_ONLY, later).await.unwrap();
        assert_eq!((up.expired, up.charges_closed, up.gateway_errors), (1, 1, 0), "{up}");
        second.poll_until(&order_id, "lou", |body| body["status"] == "expired").await;
        let (status, body) = try_to_pay(&first, &first.base, &charge).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "closed: {body}");
        second.stop().await;
        first.stop().await;
    }
}
