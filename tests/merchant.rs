//! The merchant hears about it: a receiver in the test records the signed deliveries of a
//! running service (one or two servers on one database), and the feed is read beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aggregates::{OrderId, Period, PlanId, SubscriptionCommand, Tier, UserId};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use gateways::Secret;
use harness::{free_port, loopback_base, Launch, Readiness, ScratchDir, ServerProcess};
use payledger::auth::Role;
use payledger::merchant::settings::{ConfiguredEndpoint, RetrySchedule};
use payledger::merchant::signature;
use payledger::merchant::MerchantSettings;
use payledger::store::{Actor, EventMetadata, Source};
use serde_json::{json, Value};

use crate::app::App;
use crate::helpers::on_both_stores;

const SECRET: &str = "merchant-test-secret-0123456789-abcdefghij";
const PREVIOUS_SECRET: &str = "merchant-test-previous-secret-9876543210-zyx";
/// How long a test waits for deliveries it expects.
const DELIVERY_WAIT: Duration = Duration::from_secs(15);

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub signature: String,
    pub body: Vec<u8>,
    pub json: Value,
    /// What the receiver answered.
    pub answered: u16,
}

#[derive(Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    /// Answers to give first, in order; then 200.
    script: Mutex<VecDeque<u16>>,
    /// Held before answering (a dead endpoint holds longer than the sender waits).
    delay: Mutex<Duration>,
    /// Events of this type are answered 500 while set.
    refused_type: Mutex<Option<String>>,
}

/// A merchant backend on 127.0.0.1 that records what it is sent.
pub struct Receiver {
    pub url: String,
    state: Arc<ReceiverState>,
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let delay = *state.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let refused = state.refused_type.lock().unwrap().as_deref() == json["type"].as_str();
    let scripted = state.script.lock().unwrap().pop_front();
    let answered = if refused {
        500
    } else {
        scripted.unwrap_or(200)
    };
    state.received.lock().unwrap().push(Received {
        signature: headers
            .get(signature::SIGNATURE_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        json,
        body: body.to_vec(),
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(ReceiverState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, state }
    }

    pub fn answer_first(&self, codes: &[u16]) {
        self.state
            .script
            .lock()
            .unwrap()
            .extend(codes.iter().copied());
    }

    /// Answers 500 to events of `kind` (None: to none).
    pub fn refuse_type(&self, kind: Option<&str>) {
        *self.state.refused_type.lock().unwrap() = kind.map(str::to_owned);
    }

    pub fn hold(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The deliveries it accepted (answered 2xx).
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|received| (200..300).contains(&received.answered))
            .collect()
    }

    /// Waits until it accepted an event of every type in `types`; returns them by type.
    pub async fn wait_for(&self, types: &[&str]) -> HashMap<String, Received> {
        self.wait_for_within(types, DELIVERY_WAIT).await
    }

    pub async fn wait_for_within(
        &self,
        types: &[&str],
        wait: Duration,
    ) -> HashMap<String, Received> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let by_type: HashMap<String, Received> = self
                .accepted()
                .into_iter()
                .map(|received| (received.json["type"].as_str().unwrap().to_owned(), received))
                .collect();
            if types.iter().all(|wanted| by_type.contains_key(*wanted)) {
                return by_type;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never received {types:?}; got {:?}",
                self.received()
                    .iter()
                    .map(|received| (received.json["type"].clone(), received.answered))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Fast retries and passes, so the tests take seconds.
pub fn settings(url: &str) -> MerchantSettings {
    MerchantSettings {
        endpoint: Some(ConfiguredEndpoint {
            url: url.to_owned(),
            secret: Secret::new(SECRET.to_owned()),
            previous_secret: None,
        }),
        retry: RetrySchedule {
            base: Duration::from_millis(50),
            max: Duration::from_millis(200),
            give_up_after: Duration::from_secs(60),
        },
        sender_poll: Duration::from_millis(50),
        expiry_interval: Duration::from_millis(100),
        ..MerchantSettings::default()
    }
}

fn verifies(received: &Received, secret: &str) -> bool {
    signature::verify(
        &received.signature,
        &received.body,
        secret.as_bytes(),
        Utc::now().timestamp(),
    )
    .is_ok()
}

async fn purchase(app: &App, user: &str) -> String {
    let order = app.create_order(user).await;
    app.pay(&order, "").await;
    let order_id = order["id"].as_str().unwrap().to_owned();
    app.poll_until(&order_id, user, |body| body["status"] == "paid")
        .await;
    order_id
}

fn admin(app: &App) -> String {
    app.token("merchant-admin", Role::Admin)
}

async fn admin_get(app: &App, path: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(admin(app))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Backdates an activation so the membership ends `left` from now.
async fn member_until(app: &App, user: &str, left: chrono::Duration) {
    let target = Utc::now() + left;
    let probe = target - chrono::Duration::days(31);
    let at = probe + (target - Period::Monthly.end_from(probe).unwrap());
    let metadata = EventMetadata {
        request_id: format!("test-activate-{user}"),
        actor: Actor::System,
        source: Source::Cli,
        gateway_event_id: None,
        recorded_at: Utc::now(),
    };
    let command = SubscriptionCommand::ActivateMembership {
        user_id: UserId::parse(user).unwrap(),
        order_id: OrderId::from_uuid(uuid::Uuid::new_v4()),
        plan_id: PlanId::parse("pro-monthly").unwrap(),
        tier: Tier::Pro,
        period: Period::Monthly,
        at,
    };
    app.state
        .subscriptions
        .execute(user, command, &metadata)
        .await
        .unwrap();
}

on_both_stores! {
    async fn a_purchase_tells_the_merchant_with_signed_events(db: &TestDb) {
        let receiver = Receiver::start().await;
        let app = App::spawn_merchant(db, &settings(&receiver.url)).await;
        let order_id = purchase(&app, "alice").await;
        let got = receiver.wait_for(&["order.paid", "membership.activated"]).await;

        let paid = &got["order.paid"];
        assert!(verifies(paid, SECRET), "{}", paid.signature);
        assert!(!verifies(paid, PREVIOUS_SECRET));
        let mut keys: Vec<&str> = paid.json.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["created", "data", "id", "position", "type"]);
        let position = paid.json["position"].as_i64().unwrap();
        assert_eq!(paid.json["id"], format!("evt_{position}"));
        assert!((paid.json["created"].as_i64().unwrap() - Utc::now().timestamp()).abs() < 60);
        assert_eq!(paid.json["data"]["id"], order_id.as_str());
        assert_eq!(paid.json["data"]["status"], "paid");
        assert_eq!(paid.json["data"]["membership"]["active"], true);

        let activated = &got["membership.activated"];
        assert!(verifies(activated, SECRET));
        assert_eq!(activated.json["data"]["user_id"], "alice");
        assert_eq!(activated.json["data"]["active"], true);
        assert_eq!(activated.json["data"]["tier"], "pro");
        assert_eq!(activated.json["data"]["orders"][0]["order_id"], order_id.as_str());

        // Nothing else, and nothing twice.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.accepted().len(), 2, "{:?}", receiver.received());
        let (status, listed) = admin_get(&app, "/v1/webhook-deliveries?status=delivered").await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        assert_eq!(listed["deliveries"].as_array().unwrap().len(), 2, "{listed}");
        app.stop().await;
    }

    async fn a_failing_receiver_gets_each_event_once_after_retries(db: &TestDb) {
        let receiver = Receiver::start().await;
        receiver.answer_first(&[500, 500, 503, 500]);
        let app = App::spawn_merchant(db, &settings(&receiver.url)).await;
        purchase(&app, "bea").await;
        let got = receiver.wait_for(&["order.paid", "membership.activated"]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut accepted_ids: Vec<String> = receiver
            .accepted()
            .iter()
            .map(|received| received.json["id"].as_str().unwrap().to_owned())
            .collect();
        accepted_ids.sort();
        let mut expected: Vec<String> = got
            .values()
            .map(|received| received.json["id"].as_str().unwrap().to_owned())
            .collect();
        expected.sort();
        assert_eq!(accepted_ids, expected, "an event was accepted twice");
        assert_eq!(receiver.received().len(), 6);
        // A retried delivery carries the same body, only a fresh signature time.
        for received in receiver.received() {
            let id = received.json["id"].as_str().unwrap();
            let kept = got.values().find(|delivered| delivered.json["id"] == id).unwrap();
            assert_eq!(received.body, kept.body);
            assert!(verifies(&received, SECRET));
        }
        let (_, listed) = admin_get(&app, "/v1/webhook-deliveries").await;
        let deliveries = listed["deliveries"].as_array().unwrap();
        assert_eq!(deliveries.len(), 2, "{listed}");
        let attempts: usize = deliveries
            .iter()
            .map(|delivery| {
                assert_eq!(delivery["status"], "delivered");
                assert_eq!(delivery["last_response_code"], 200);
                let log = delivery["attempt_log"].as_array().unwrap();
                assert_eq!(log.len(), usize::try_from(delivery["attempts"].as_i64().unwrap()).unwrap());
                log.len()
            })
            .sum();
        assert_eq!(attempts, 6);
        let codes: Vec<i64> = deliveries
            .iter()
            .flat_map(|delivery| delivery["attempt_log"].as_array().unwrap().clone())
            .map(|attempt| attempt["response_code"].as_i64().unwrap())
            .collect();
        assert_eq!(codes.iter().filter(|code| **code >= 500).count(), 4, "{codes:?}");

        // An admin may send one again: the receiver sees the same id once more.
        let first = deliveries[0]["id"].as_str().unwrap();
        let event_id = deliveries[0]["event_id"].as_str().unwrap();
        let response = app
            .client
            .post(app.url(&format!("/v1/webhook-deliveries/{first}/retry")))
            .bearer_auth(admin(&app))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
        while receiver.accepted().iter().filter(|received| received.json["id"] == event_id).count() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "the retry was never sent");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let (status, missing) = app
            .post("/v1/webhook-deliveries/whd_nope/retry", &admin(&app), json!({}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(missing["error"]["code"], "webhook_delivery.not_found");
        let (status, _) = app.get("/v1/webhook-deliveries", "bea").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        app.stop().await;
    }

    async fn a_delivery_is_given_up_after_its_retry_window(db: &TestDb) {
        let receiver = Receiver::start().await;
        receiver.answer_first(&[500; 10_000]);
        let mut short = settings(&receiver.url);
        short.retry.give_up_after = Duration::from_millis(400);
        let app = App::spawn_merchant(db, &short).await;
        purchase(&app, "jana").await;
        let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
        let failed = loop {
            let (_, listed) = admin_get(&app, "/v1/webhook-deliveries?status=failed").await;
            let failed = listed["deliveries"].as_array().unwrap().clone();
            if failed.len() == 2 {
                break failed;
            }
            assert!(tokio::time::Instant::now() < deadline, "never given up: {listed}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for delivery in &failed {
            assert!(delivery["attempts"].as_i64().unwrap() >= 2, "{delivery}");
            assert_eq!(delivery["last_response_code"], 500);
            assert_eq!(delivery["next_attempt_at"], Value::Null);
        }
        let attempts_before = receiver.received().len();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(receiver.received().len(), attempts_before, "a failed delivery was retried");
        let metrics = app
            .client
            .get(app.url("/metrics"))
            .bearer_auth(admin(&app))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.contains("payledger_merchant_webhook_failed_total 2"), "{metrics}");
        assert!(
            metrics.contains(&format!(
                "payledger_merchant_webhook_attempts_total{{outcome=\"refused\"}} {attempts_before}"
            )),
            "{metrics}"
        );

        // An admin sends a failed one again once the receiver is back.
        receiver.accept_all();
        let id = failed[0]["id"].as_str().unwrap();
        let (status, _) = app
            .post(&format!("/v1/webhook-deliveries/{id}/retry"), &admin(&app), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let kind = failed[0]["event_type"].as_str().unwrap().to_owned();
        receiver.wait_for(&[kind.as_str()]).await;
        let (_, listed) = admin_get(&app, "/v1/webhook-deliveries?status=delivered").await;
        assert_eq!(listed["deliveries"][0]["id"], id, "{listed}");
        app.stop().await;
    }

    async fn deleting_an_endpoint_fails_its_pending_deliveries(db: &TestDb) {
        let configured = Receiver::start().await;
        let refusing = Receiver::start().await;
        refusing.answer_first(&[500; 10_000]);
        let app = App::spawn_merchant(db, &settings(&configured.url)).await;
        let (status, created) = app
            .post("/v1/webhook-endpoints", &admin(&app), json!({"url": refusing.url}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        purchase(&app, "kai").await;
        configured.wait_for(&["order.paid", "membership.activated"]).await;
        let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
        while refusing.received().len() < 4 {
            assert!(tokio::time::Instant::now() < deadline, "the refusing endpoint was never tried");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let response = app
            .client
            .delete(app.url(&format!("/v1/webhook-endpoints/{id}")))
            .bearer_auth(admin(&app))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        // An attempt in flight may still land; after that, nothing more is sent.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let tried = refusing.received().len();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(refusing.received().len(), tried);
        let (_, listed) = admin_get(&app, &format!("/v1/webhook-deliveries?endpoint_id={id}")).await;
        let deliveries = listed["deliveries"].as_array().unwrap();
        assert_eq!(deliveries.len(), 2, "{listed}");
        assert!(deliveries.iter().all(|delivery| delivery["status"] == "failed"), "{listed}");
        let (_, endpoints) = admin_get(&app, "/v1/webhook-endpoints").await;
        assert_eq!(endpoints["endpoints"].as_array().unwrap().len(), 1, "{endpoints}");
        app.stop().await;
    }

    async fn a_dead_endpoint_does_not_delay_a_healthy_one(db: &TestDb) {
        let dead = Receiver::start().await;
        dead.hold(Duration::from_secs(60));
        let healthy = Receiver::start().await;
        let app = App::spawn_merchant(db, &settings(&dead.url)).await;
        let (status, created) = app
            .post(
                "/v1/webhook-endpoints",
                &admin(&app),
                json!({"url": healthy.url, "event_types": ["order.paid"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let secret = created["secret"].as_str().unwrap().to_owned();
        assert!(secret.len() >= 32);
        let (_, listed) = admin_get(&app, "/v1/webhook-endpoints").await;
        assert_eq!(listed["endpoints"].as_array().unwrap().len(), 2, "{listed}");
        assert!(!listed.to_string().contains(&secret), "a secret was listed");

        let started = tokio::time::Instant::now();
        purchase(&app, "cleo").await;
        let got = healthy.wait_for(&["order.paid"]).await;
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(verifies(&got["order.paid"], &secret));
        assert!(!verifies(&got["order.paid"], SECRET));
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Only the type it asked for.
        assert_eq!(healthy.accepted().len(), 1, "{:?}", healthy.received());
        assert!(dead.received().is_empty());

        let (status, refused) = app
            .post("/v1/webhook-endpoints", &admin(&app), json!({"url": "ftp://x", "event_types": []}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert_eq!(refused["error"]["code"], "webhook_endpoint.invalid_url");
        let (status, refused) = app
            .post("/v1/webhook-endpoints", &admin(&app), json!({"url": healthy.url, "event_types": ["order.created"]}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert_eq!(refused["error"]["code"], "webhook_endpoint.unknown_event_type");
        let id = created["id"].as_str().unwrap();
        let delete = |id: String| {
            let request = app.client.delete(app.url(&format!("/v1/webhook-endpoints/{id}"))).bearer_auth(admin(&app));
            async move { request.send().await.unwrap().status() }
        };
        assert_eq!(delete(id.to_owned()).await, StatusCode::NO_CONTENT);
        assert_eq!(delete(id.to_owned()).await, StatusCode::NOT_FOUND);
        assert_eq!(delete("we_configured".to_owned()).await, StatusCode::CONFLICT);
        let (_, listed) = admin_get(&app, &format!("/v1/webhook-deliveries?endpoint_id={id}")).await;
        let delivered = listed["deliveries"][0]["id"].as_str().unwrap().to_owned();
        let (status, refused) = app
            .post(&format!("/v1/webhook-deliveries/{delivered}/retry"), &admin(&app), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{refused}");
        assert_eq!(refused["error"]["code"], "webhook_delivery.endpoint_deleted");
        // The configured endpoint stays, its deliveries pending while it does not answer.
        let (_, pending) = admin_get(&app, "/v1/webhook-deliveries?status=pending").await;
        assert_eq!(pending["deliveries"].as_array().unwrap().len(), 2, "{pending}");
        app.stop().await;
    }

    async fn one_members_events_arrive_in_position_order_despite_failures(db: &TestDb) {
        let receiver = Receiver::start().await;
        // The activation is refused, so the extension is due while the activation waits.
        receiver.refuse_type(Some("membership.activated"));
        let app = App::spawn_merchant(db, &settings(&receiver.url)).await;
        purchase(&app, "hugo").await;
        purchase(&app, "hugo").await;
        receiver.wait_for(&["order.paid"]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The orders' events are not held up by the member's.
        let paid = receiver
            .accepted()
            .iter()
            .filter(|received| received.json["type"] == "order.paid")
            .count();
        assert_eq!(paid, 2);
        assert!(
            receiver
                .received()
                .iter()
                .all(|received| received.json["type"] != "membership.extended"),
            "the extension went out before the activation"
        );
        receiver.refuse_type(None);
        receiver.wait_for(&["membership.activated", "membership.extended"]).await;
        let arrivals: Vec<(String, u16)> = receiver
            .received()
            .iter()
            .filter(|received| received.json["type"].as_str().unwrap().starts_with("membership."))
            .map(|received| (received.json["type"].as_str().unwrap().to_owned(), received.answered))
            .collect();
        let activated_accepted = arrivals
            .iter()
            .position(|(kind, code)| kind == "membership.activated" && *code == 200)
            .unwrap();
        let extended_first = arrivals
            .iter()
            .position(|(kind, _)| kind == "membership.extended")
            .unwrap();
        assert!(activated_accepted < extended_first, "{arrivals:?}");
        let (_, listed) = admin_get(&app, "/v1/webhook-deliveries?limit=10").await;
        let positions: Vec<i64> = listed["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|delivery| delivery["position"].as_i64().unwrap())
            .collect();
        let mut newest_first = positions.clone();
        newest_first.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(positions, newest_first);
        app.stop().await;
    }

    async fn refunds_and_wrong_amounts_are_told_too(db: &TestDb) {
        let receiver = Receiver::start().await;
        let app = App::spawn_merchant(db, &settings(&receiver.url)).await;
        let order_id = purchase(&app, "lars").await;
        let (status, body) = app
            .post(
                &format!("/v1/orders/{order_id}/refunds"),
                &admin(&app),
                json!({"amount": 9_900, "reason": "changed their mind"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let got = receiver
            .wait_for(&["order.refund_succeeded", "membership.revoked"])
            .await;
        assert_eq!(got["order.refund_succeeded"].json["data"]["id"], order_id.as_str());
        assert_eq!(got["order.refund_succeeded"].json["data"]["refunded_amount"], 9_900);
        assert_eq!(got["membership.revoked"].json["data"]["active"], false);

        let short = app.create_order("mona").await;
        app.pay(&short, "amount=100").await;
        let got = receiver.wait_for(&["order.needs_review"]).await;
        let review = &got["order.needs_review"].json["data"];
        assert_eq!(review["id"], short["id"]);
        assert_eq!(review["needs_review"], true, "{review}");
        assert_eq!(review["status"], "pending", "{review}");
        app.stop().await;
    }

    async fn a_secret_rotation_sends_both_signatures(db: &TestDb) {
        let receiver = Receiver::start().await;
        let mut rotating = settings(&receiver.url);
        if let Some(endpoint) = rotating.endpoint.as_mut() {
            endpoint.previous_secret = Some(Secret::new(PREVIOUS_SECRET.to_owned()));
        }
        let app = App::spawn_merchant(db, &rotating).await;
        purchase(&app, "dana").await;
        let got = receiver.wait_for(&["order.paid"]).await;
        let paid = &got["order.paid"];
        assert_eq!(paid.signature.matches("v1=").count(), 2, "{}", paid.signature);
        assert!(verifies(paid, SECRET));
        assert!(verifies(paid, PREVIOUS_SECRET));
        app.stop().await;
    }

    async fn a_membership_expires_once_with_two_servers(db: &TestDb) {
        let receiver = Receiver::start().await;
        let merchant = settings(&receiver.url);
        let first = App::spawn_merchant(db, &merchant).await;
        let second = App::spawn_another_merchant(db, &merchant).await;
        member_until(&first, "emil", chrono::Duration::seconds(2)).await;
        let (_, before) = first.get("/v1/membership", "emil").await;
        assert_eq!(before["active"], true, "{before}");

        let got = receiver
            .wait_for(&["membership.activated", "membership.expiring", "membership.expired"])
            .await;
        // Both servers ran their passes meanwhile; let them run a few more.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let expired_in_log = projections::log::read_stream(&first.state.store.read, "subscription", "emil")
            .await
            .unwrap()
            .iter()
            .filter(|event| event.event_type == "MembershipExpired")
            .count();
        assert_eq!(expired_in_log, 1);
        // Two outboxes and two senders, yet every event arrives once.
        for kind in ["membership.activated", "membership.expiring", "membership.expired"] {
            let count = receiver.accepted().iter().filter(|received| received.json["type"] == kind).count();
            assert_eq!(count, 1, "{kind} delivered {count} times");
        }
        assert_eq!(got["membership.expired"].json["data"]["active"], false);
        assert!(verifies(&got["membership.expired"], SECRET));
        let (_, after) = second.get("/v1/membership", "emil").await;
        assert_eq!(after["active"], false, "{after}");
        assert_eq!(after["tier"], "free", "{after}");
        second.stop().await;
        first.stop().await;
    }

    async fn an_endpoint_added_through_one_server_is_served_by_another(db: &TestDb) {
        let receiver = Receiver::start().await;
        // Until released, the paid order's event is refused, so its delivery stays pending.
        receiver.refuse_type(Some("order.paid"));
        let unconfigured = MerchantSettings { endpoint: None, ..settings(&receiver.url) };
        let first = App::spawn_merchant(db, &unconfigured).await;
        let second = App::spawn_another_merchant(db, &unconfigured).await;
        let (status, created) = first
            .post("/v1/webhook-endpoints", &admin(&first), json!({"url": receiver.url}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let secret = created["secret"].as_str().unwrap().to_owned();
        purchase(&first, "ines").await;
        receiver.wait_for(&["membership.activated"]).await;
        let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
        while !receiver.received().iter().any(|received| received.json["type"] == "order.paid") {
            assert!(tokio::time::Instant::now() < deadline, "order.paid was never tried");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        // The server the endpoint was added through goes away; the other one, which never
        // served that endpoint through its own API, must take over its pending delivery well
        // before its senders would look at the endpoints on their own.
        first.stop().await;
        receiver.refuse_type(None);
        let got = receiver.wait_for_within(&["order.paid"], DELIVERY_WAIT).await;
        assert!(verifies(&got["order.paid"], &secret));
        second.stop().await;
    }

    async fn an_expiry_changes_the_order_etag_and_happens_once(db: &TestDb) {
        let receiver = Receiver::start().await;
        let merchant = settings(&receiver.url);
        let app = App::spawn_merchant(db, &merchant).await;
        let order_id = purchase(&app, "finn").await;
        let etag = |app: &App| {
            let request = app
                .client
                .get(app.url(&format!("/v1/orders/{order_id}")))
                .bearer_auth(app.token("finn", Role::User));
            async move {
                let response = request.send().await.unwrap();
                response.headers()["etag"].to_str().unwrap().to_owned()
            }
        };
        let before = etag(&app).await;
        let state = &app.state;
        // Not yet due: nothing is recorded.
        let early = payledger::merchant::expiry::run_pass(state, &merchant, Utc::now()).await.unwrap();
        assert!(early.expired.is_empty());
        let later = Utc::now() + chrono::Duration::days(40);
        let due = payledger::merchant::expiry::run_pass(state, &merchant, later).await.unwrap();
        assert_eq!(due.expired, ["finn"]);
        let again = payledger::merchant::expiry::run_pass(state, &merchant, later).await.unwrap();
        assert!(again.expired.is_empty());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while etag(&app).await == before {
            assert!(tokio::time::Instant::now() < deadline, "the ETag never changed");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let (_, order) = app.get(&format!("/v1/orders/{order_id}"), "finn").await;
        assert_eq!(order["membership"]["active"], false, "{order}");
        let got = receiver.wait_for(&["membership.expired"]).await;
        assert_eq!(got["membership.expired"].json["data"]["user_id"], "finn");
        app.stop().await;
    }

    async fn the_feed_lists_the_same_events_in_position_order(db: &TestDb) {
        let receiver = Receiver::start().await;
        let app = App::spawn_merchant(db, &settings(&receiver.url)).await;
        purchase(&app, "gus").await;
        purchase(&app, "gus").await;
        receiver.wait_for(&["order.paid", "membership.activated", "membership.extended"]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;

        let (status, feed) = admin_get(&app, "/v1/events?after=0").await;
        assert_eq!(status, StatusCode::OK, "{feed}");
        let events = feed["events"].as_array().unwrap();
        let positions: Vec<i64> = events.iter().map(|event| event["position"].as_i64().unwrap()).collect();
        let mut sorted = positions.clone();
        sorted.sort_unstable();
        assert_eq!(positions, sorted);
        let feed_ids: Vec<&str> = events.iter().map(|event| event["id"].as_str().unwrap()).collect();
        let mut delivered: Vec<(i64, String)> = receiver
            .accepted()
            .iter()
            .map(|received| (received.json["position"].as_i64().unwrap(), received.json["id"].as_str().unwrap().to_owned()))
            .collect();
        delivered.sort();
        let delivered_ids: Vec<&str> = delivered.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(feed_ids, delivered_ids);
        let types: Vec<&str> = events.iter().map(|event| event["type"].as_str().unwrap()).collect();
        assert_eq!(types.iter().filter(|kind| **kind == "order.paid").count(), 2, "{types:?}");

        // Paging: one at a time from the start reaches the same list.
        let mut after = 0;
        let mut paged = Vec::new();
        loop {
            let (_, page) = admin_get(&app, &format!("/v1/events?after={after}&limit=1")).await;
            let Some(event) = page["events"].as_array().unwrap().first() else { break };
            paged.push(event["id"].as_str().unwrap().to_owned());
            after = page["next_after"].as_i64().unwrap();
        }
        assert_eq!(paged, feed_ids);

        // A long poll past the end answers when the next event is committed.
        let next = feed["next_after"].as_i64().unwrap();
        let poll = {
            let request = app.client.get(app.url(&format!("/v1/events?after={next}&wait=10"))).bearer_auth(admin(&app));
            tokio::spawn(async move { request.send().await.unwrap().json::<Value>().await.unwrap() })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!poll.is_finished());
        purchase(&app, "hana").await;
        let answered = tokio::time::timeout(Duration::from_secs(5), poll).await.unwrap().unwrap();
        let first = &answered["events"][0];
        assert!(first["position"].as_i64().unwrap() > next, "{answered}");

        let (status, refused) = admin_get(&app, "/v1/events?limit=0").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        let (status, _) = app.get("/v1/events", "gus").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        app.stop().await;
    }
}

/// The ledger binary, for the tests that kill it or run its command line.
const BINARY: &str = env!("CARGO_BIN_EXE_payledger");
const JWT_SECRET: &str = "merchant-crash-jwt-secret-0123456789-abcdef";
/// Longer than a dead process's lease on a delivery.
const RESTART_WAIT: Duration = Duration::from_secs(30);

impl Receiver {
    /// From now on, answer 200.
    pub fn accept_all(&self) {
        self.state.script.lock().unwrap().clear();
    }
}

/// The ledger as a child process, killed and its data removed however the test ends.
struct Ledger {
    server: Option<ServerProcess>,
    dir: ScratchDir,
    port: u16,
    database_url: String,
    receiver_url: String,
}

impl Ledger {
    fn start(&mut self) {
        let launch = Launch::new(BINARY)
            .env_clear()
            .env("DATABASE_URL", &self.database_url)
            .env("PAYLEDGER_ADDR", format!("127.0.0.1:{}", self.port))
            .env("PAYLEDGER_DATA_DIR", self.dir.join("data"))
            .env("PAYLEDGER_JWT_SECRET", JWT_SECRET)
            .env("PAYLEDGER_MERCHANT_WEBHOOK_URL", &self.receiver_url)
            .env("PAYLEDGER_MERCHANT_WEBHOOK_SECRET", SECRET)
            .env("PAYLEDGER_MERCHANT_WEBHOOK_RETRY_BASE_MS", "100")
            .env("PAYLEDGER_MERCHANT_WEBHOOK_RETRY_MAX_MS", "300")
            .env("RUST_LOG", "warn")
            .stderr_to(self.dir.join("ledger.log"));
        self.server = Some(ServerProcess::spawn(&launch, self.base()).unwrap());
    }

    /// SIGKILL: nothing in flight gets to finish.
    fn kill(&mut self) {
        self.server.take().unwrap().kill().unwrap();
    }

    fn base(&self) -> String {
        loopback_base(self.port)
    }

    async fn wait_until_up(&mut self) {
        let ready = Readiness::answers("/healthz").within(Duration::from_secs(30));
        self.server
            .as_mut()
            .unwrap()
            .wait_ready(&ready)
            .await
            .unwrap_or_else(|error| panic!("the ledger never came up: {error}"));
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        drop(self.server.take());
        if std::thread::panicking() {
            if let Ok(text) = std::fs::read_to_string(self.dir.join("ledger.log")) {
                eprintln!("--- ledger.log ---\n{text}");
            }
        }
    }
}

on_both_stores! {
    async fn a_ledger_killed_before_delivering_delivers_after_restart(db: &TestDb) {
        let receiver = Receiver::start().await;
        // Refuses until the ledger has been killed.
        receiver.answer_first(&[503; 10_000]);
        let mut ledger = Ledger {
            server: None,
            dir: ScratchDir::new("merchant").unwrap(),
            port: free_port().unwrap(),
            database_url: db.url.as_str().to_owned(),
            receiver_url: receiver.url.clone(),
        };
        ledger.start();
        let client = crate::helpers::http_client();
        ledger.wait_until_up().await;

        let token = payledger::auth::TokenKeys::from_secret(JWT_SECRET.as_bytes())
            .issue("ivan", Role::User, chrono::Duration::hours(1), Utc::now())
            .unwrap();
        let order: Value = client
            .post(format!("{}/v1/orders", ledger.base()))
            .bearer_auth(&token)
            .json(&json!({"plan_id": "pro-monthly", "channel": "alipay_qr"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let qr_code = order["qr_code"].as_str().unwrap();
        let charge_page = qr_code.split('?').next().unwrap();
        let paid = client.post(format!("{charge_page}/pay")).send().await.unwrap();
        assert!(paid.status().is_success());
        // Wait until the payment is in the log and its deliveries were refused at least once.
        let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
        while !receiver.received().iter().any(|received| received.json["type"] == "order.paid") {
            assert!(tokio::time::Instant::now() < deadline, "no delivery was ever attempted");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        ledger.kill();
        assert!(receiver.accepted().is_empty());
        receiver.accept_all();

        ledger.start();
        // A delivery the killed process was sending is held by its lease until that runs out
        // (the response timeout and a margin, 15 s); the others go at once.
        let got = receiver
            .wait_for_within(&["order.paid", "membership.activated"], RESTART_WAIT)
            .await;
        assert_eq!(got["order.paid"].json["data"]["id"], order["id"]);
        assert!(verifies(&got["order.paid"], SECRET));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut ids: Vec<String> = receiver
            .accepted()
            .iter()
            .map(|received| received.json["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), receiver.accepted().len(), "an event was accepted twice");
        assert_eq!(ids.len(), 2);
        ledger.kill();
    }
}

#[test]
fn the_command_line_verifies_a_captured_delivery() {
    let dir = std::env::temp_dir().join(format!("payledger-verify-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let body = br#"{"id":"evt_3","type":"order.paid"}"#;
    let path = dir.join("body.json");
    std::fs::write(&path, body).unwrap();
    let t = 1_800_000_000;
    let header = format!(
        "Payledger-Signature: {}",
        signature::header_value(&[SECRET], t, body)
    );
    let run = |secret: &str, header: &str, at: i64| {
        let launch = Launch::new(BINARY)
            .env_clear()
            .args([
                "webhook",
                "verify",
                "--provider",
                "payledger",
                "--secret",
                secret,
            ])
            .args(["--header", header, "--body"])
            .arg(&path)
            .args(["--at", &at.to_string()]);
        harness::run(&launch).unwrap().status.code()
    };
    assert_eq!(run(SECRET, &header, t + 10), Some(0));
    assert_eq!(run(PREVIOUS_SECRET, &header, t), Some(1));
    assert_eq!(run(SECRET, &header, t + 301), Some(1));
    assert_eq!(run(SECRET, "Content-Type: application/json", t), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}
