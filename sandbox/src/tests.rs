//! The sandbox over real HTTP: its router on one ephemeral port, a webhook receiver on another.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::store::{RefundOutcome, Store};
use super::*;
use gateways::pingpp::keys;
use gateways::pingpp::signature::{self, SignatureError};
use gateways::pingpp::wire::{Event, WEBHOOK_SIGNATURE_HEADER};

const API_KEY: &str = "sk_test_sandbox_key";

/// Key generation is slow: one key for the whole test binary.
fn signing_key() -> RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| keys::generate().unwrap()).clone()
}

#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    answered: StatusCode,
}

/// A webhook endpoint that records every request and can fail the first N.
#[derive(Debug, Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    failures_left: Arc<AtomicUsize>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let failing = receiver
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    let answered = if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    receiver.received.lock().unwrap().push(Received {
        headers,
        body,
        answered,
    });
    answered
}

impl Receiver {
    fn fail_first(&self, count: usize) {
        self.failures_left.store(count, Ordering::SeqCst);
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn delivered(&self) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|received| received.answered.is_success())
            .collect()
    }

    async fn wait_for_delivered(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let delivered = self.delivered();
            if delivered.len() >= count {
                return delivered;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} deliveries, got {}",
                delivered.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

struct Harness {
    sandbox: Sandbox,
    receiver: Receiver,
    client: reqwest::Client,
    public_url: String,
    /// `{public_url}/sandbox`.
    base: String,
    api_key: Option<&'static str>,
}

async fn start_with(api_key: Option<&'static str>) -> Harness {
    let receiver = Receiver::default();
    let receiver_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let webhook_url = format!(
        "http://{}/webhooks/pingpp",
        receiver_listener.local_addr().unwrap()
    );
    let receiver_app = Router::new()
        .route("/webhooks/pingpp", post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(receiver_listener, receiver_app).await.unwrap() });

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public_url = format!("http://{}", listener.local_addr().unwrap());
    let sandbox = Sandbox::new(SandboxConfig {
        api_key: api_key.map(|key| Secret::new(key.to_owned())),
        signing_key: signing_key(),
        webhook_url,
        public_url: format!("{public_url}/"),
    });
    sandbox
        .update_knobs(KnobsUpdate {
            retry_base_ms: Some(10),
            refund_delay_ms: Some(20),
            ..KnobsUpdate::default()
        })
        .unwrap();
    let app = Router::new().nest("/sandbox", sandbox.router());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Harness {
        sandbox,
        receiver,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        base: format!("{public_url}/sandbox"),
        public_url,
        api_key,
    }
}

async fn start() -> Harness {
    start_with(None).await
}

fn charge_request(order_no: &str) -> Value {
    json!({
        "order_no": order_no,
        "app": {"id": "app_sandbox"},
        "channel": "alipay_qr",
        "amount": 9900,
        "client_ip": "127.0.0.1",
        "currency": "cny",
        "subject": "Pro monthly",
        "body": "Pro monthly membership",
        "metadata": {"order_id": order_no},
    })
}

async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

impl Harness {
    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let request = self.client.post(format!("{}{path}", self.base)).json(body);
        answer(self.authorized(request).send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let request = self.client.get(format!("{}{path}", self.base));
        answer(self.authorized(request).send().await.unwrap()).await
    }

    async fn create_charge(&self, order_no: &str) -> Value {
        let (status, charge) = self.post("/v1/charges", &charge_request(order_no)).await;
        assert_eq!(status, StatusCode::OK, "{charge}");
        charge
    }

    /// The customer pays, with knobs in `query` (e.g. "?duplicate=2").
    async fn pay(&self, charge_id: &str, query: &str) -> (StatusCode, Value) {
        let url = format!("{}/charges/{charge_id}/pay{query}", self.base);
        answer(self.client.post(url).send().await.unwrap()).await
    }

    async fn paid_charge(&self, order_no: &str) -> String {
        let charge = self.create_charge(order_no).await;
        let id = charge["id"].as_str().unwrap().to_owned();
        let (status, payment) = self.pay(&id, "").await;
        assert_eq!(status, StatusCode::OK, "{payment}");
        self.receiver.wait_for_delivered(1).await;
        id
    }

    async fn refund(&self, charge_id: &str, body: Value) -> (StatusCode, Value) {
        self.post(&format!("/v1/charges/{charge_id}/refunds"), &body)
            .await
    }

    /// Delivery counts once `done` holds (the receiver records a request before the sandbox
    /// has read the answer and counted it).
    async fn stats_when(&self, done: impl Fn(&DeliveryStats) -> bool) -> DeliveryStats {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stats = self.sandbox.deliveries();
            if done(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "delivery counts stuck at {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Checks the signature over the exact bytes received, then reads the event.
    fn verified(&self, received: &Received) -> Event {
        let signature = received.headers[WEBHOOK_SIGNATURE_HEADER].to_str().unwrap();
        signature::verify(&self.sandbox.public_key(), &received.body, signature).unwrap();
        serde_json::from_slice(&received.body).unwrap()
    }
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_created_charge_can_be_retrieved() {
    let harness = start().await;
    let charge = harness.create_charge("order0001").await;
    let id = charge["id"].as_str().unwrap();
    let suffix = id.strip_prefix("ch_").unwrap();
    assert_eq!(suffix.len(), 24);
    assert!(suffix.bytes().all(|byte| byte.is_ascii_alphanumeric()));
    assert_eq!(charge["object"], "charge");
    assert_eq!(charge["paid"], false);
    assert_eq!(charge["amount"], 9900);
    assert_eq!(charge["livemode"], false);
    assert_eq!(charge["metadata"]["order_id"], "order0001");
    assert_eq!(charge["credential"]["object"], "credential");
    assert_eq!(
        charge["credential"]["alipay_qr"],
        format!("{}/sandbox/charges/{id}", harness.public_url)
    );

    let (status, retrieved) = harness.get(&format!("/v1/charges/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retrieved, charge);

    let (status, missing) = harness.get("/v1/charges/ch_unknown").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn an_identical_create_returns_the_same_charge_and_a_conflicting_one_is_refused() {
    let harness = start().await;
    let first = harness.create_charge("order0002").await;
    let again = harness.create_charge("order0002").await;
    assert_eq!(first["id"], again["id"]);

    let mut different = charge_request("order0002");
    different["amount"] = json!(100);
    let (status, error) = harness.post("/v1/charges", &different).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["param"], "order_no");
}

#[tokio::test]
async fn invalid_charge_requests_are_refused_in_the_ping_plus_plus_shape() {
    let harness = start().await;
    let past = chrono::Utc::now().timestamp() - 10;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("amount", json!(0), "amount"),
        ("amount", json!(-5), "amount"),
        ("amount", json!(99.5), "amount"),
        ("currency", json!("CNY"), "currency"),
        ("currency", json!("usd"), "currency"),
        ("channel", json!("bank_transfer"), "channel"),
        ("channel", json!("wx_pub_qr"), "extra[product_id]"),
        ("order_no", json!("order-0003"), "order_no"),
        ("order_no", json!(""), "order_no"),
        ("order_no", json!("a".repeat(65)), "order_no"),
        ("subject", json!("s".repeat(33)), "subject"),
        ("body", json!("b".repeat(129)), "body"),
        ("time_expire", json!(past), "time_expire"),
        ("client_ip", json!("not an address"), "client_ip"),
    ];
    for (field, value, param) in cases {
        let mut request = charge_request("order0003");
        request[field] = value.clone();
        let (status, error) = harness.post("/v1/charges", &request).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{field} = {value}: {error}"
        );
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert_eq!(error["error"]["param"], param, "{field} = {value}: {error}");
        assert!(error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }

    let mut missing = charge_request("order0003");
    missing.as_object_mut().unwrap().remove("subject");
    let (status, error) = harness.post("/v1/charges", &missing).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["param"], "subject");

    let response = harness
        .client
        .post(format!("{}/v1/charges", harness.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, error) = answer(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["type"], "invalid_request_error");

    let mut wechat = charge_request("order0004");
    wechat["channel"] = json!("wx_pub_qr");
    wechat["extra"] = json!({"product_id": "pro-monthly"});
    let (status, charge) = harness.post("/v1/charges", &wechat).await;
    assert_eq!(status, StatusCode::OK, "{charge}");
    assert!(charge["credential"]["wx_pub_qr"].is_string());
}

#[tokio::test]
async fn the_api_key_is_required_when_configured() {
    let harness = start_with(Some(API_KEY)).await;
    let url = format!("{}/v1/charges", harness.base);
    let request = charge_request("order0005");

    let (status, error) = answer(
        harness
            .client
            .post(&url)
            .json(&request)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(error["error"]["message"].is_string());

    let wrong = harness
        .client
        .post(&url)
        .bearer_auth("sk_test_wrong")
        .json(&request);
    assert_eq!(
        answer(wrong.send().await.unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );

    let bearer = harness
        .client
        .post(&url)
        .bearer_auth(API_KEY)
        .json(&request);
    let (status, charge) = answer(bearer.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    let basic = format!("Basic {}", STANDARD.encode(format!("{API_KEY}:")));
    let retrieve = harness
        .client
        .get(format!("{url}/{}", charge["id"].as_str().unwrap()))
        .header("authorization", basic);
    assert_eq!(
        answer(retrieve.send().await.unwrap()).await.0,
        StatusCode::OK
    );

    let knobs = harness.client.get(format!("{}/knobs", harness.base));
    assert_eq!(
        answer(knobs.send().await.unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );

    // The customer has no key: the page stays open.
    let page = harness
        .client
        .get(format!(
            "{}/charges/{}",
            harness.base,
            charge["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
}

#[tokio::test]
async fn paying_delivers_a_signed_charge_succeeded_event() {
    let harness = start().await;
    let charge = harness.create_charge("order0006").await;
    let id = charge["id"].as_str().unwrap();
    let (status, payment) = harness.pay(id, "").await;
    assert_eq!(status, StatusCode::OK, "{payment}");
    assert_eq!(payment["charge"]["paid"], true);

    let delivered = harness.receiver.wait_for_delivered(1).await;
    let received = &delivered[0];
    assert_eq!(received.headers["content-type"], "application/json");
    let event = harness.verified(received);
    assert_eq!(event.event_type, "charge.succeeded");
    assert_eq!(event.object, "event");
    assert!(!event.livemode);
    assert_eq!(event.id, payment["event_id"].as_str().unwrap());
    assert!(event.id.starts_with("evt_"));
    assert!(event
        .request
        .as_deref()
        .is_some_and(|r| r.starts_with("iar_")));
    assert_eq!(event.data.object["id"], id);
    assert_eq!(event.data.object["paid"], true);
    assert_eq!(event.data.object["amount"], 9900);

    let (_, retrieved) = harness.get(&format!("/v1/charges/{id}")).await;
    assert_eq!(retrieved["paid"], true);
    assert!(retrieved["time_paid"].is_i64());
    let transaction_no = retrieved["transaction_no"].as_str().unwrap();
    assert!(!transaction_no.is_empty() && transaction_no.bytes().all(|b| b.is_ascii_digit()));

    let stats = harness.stats_when(|stats| stats.delivered == 1).await;
    assert_eq!((stats.attempted, stats.delivered, stats.failed), (1, 1, 0));
}

#[tokio::test]
async fn paying_twice_is_a_conflict_and_paying_an_unknown_charge_is_not_found() {
    let harness = start().await;
    let id = harness.paid_charge("order0007").await;
    let (status, error) = harness.pay(&id, "").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error["error"]["code"], "charge_already_paid");

    let (status, error) = harness.pay("ch_unknown", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error["error"]["message"].is_string());

    let (status, error) = harness.pay(&id, "?duplicate=99").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["param"], "duplicate");
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_on_the_third_attempt() {
    let harness = start().await;
    harness.receiver.fail_first(2);
    let charge = harness.create_charge("order0008").await;
    harness.pay(charge["id"].as_str().unwrap(), "").await;

    harness.receiver.wait_for_delivered(1).await;
    let all = harness.receiver.all();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].answered, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(all[1].answered, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(all[2].answered, StatusCode::OK);
    assert!(all.iter().all(|received| received.body == all[0].body));
    harness.verified(&all[2]);

    let stats = harness.stats_when(|stats| stats.delivered == 1).await;
    assert_eq!((stats.attempted, stats.delivered, stats.failed), (3, 1, 2));
    assert_eq!(stats.abandoned, 0);
}

#[tokio::test]
async fn duplicate_delivers_the_same_event_again() {
    let harness = start().await;
    let charge = harness.create_charge("order0009").await;
    let (_, payment) = harness
        .pay(charge["id"].as_str().unwrap(), "?duplicate=2")
        .await;

    let delivered = harness.receiver.wait_for_delivered(3).await;
    assert_eq!(delivered.len(), 3);
    for received in &delivered {
        assert_eq!(received.body, delivered[0].body);
        assert_eq!(
            received.headers[WEBHOOK_SIGNATURE_HEADER],
            delivered[0].headers[WEBHOOK_SIGNATURE_HEADER]
        );
        assert_eq!(
            harness.verified(received).id,
            payment["event_id"].as_str().unwrap()
        );
    }
    settle().await;
    assert_eq!(harness.receiver.all().len(), 3);
}

#[tokio::test]
async fn drop_marks_the_charge_paid_without_delivering() {
    let harness = start().await;
    let charge = harness.create_charge("order0010").await;
    let id = charge["id"].as_str().unwrap();
    let (status, _) = harness.pay(id, "?drop=1").await;
    assert_eq!(status, StatusCode::OK);

    settle().await;
    assert!(harness.receiver.all().is_empty());
    let (_, retrieved) = harness.get(&format!("/v1/charges/{id}")).await;
    assert_eq!(retrieved["paid"], true);
    let stats = harness.sandbox.deliveries();
    assert_eq!((stats.attempted, stats.dropped), (0, 1));
}

#[tokio::test]
async fn a_corrupt_signature_never_verifies_and_is_retried_until_the_attempt_limit() {
    let harness = start().await;
    harness
        .sandbox
        .update_knobs(KnobsUpdate {
            retry_base_ms: Some(1),
            ..KnobsUpdate::default()
        })
        .unwrap();
    // The receiver refuses every attempt, as the ledger refuses a forged webhook.
    harness.receiver.fail_first(usize::MAX);
    let charge = harness.create_charge("order0011").await;
    harness
        .pay(charge["id"].as_str().unwrap(), "?corrupt_signature=1")
        .await;

    let stats = harness.stats_when(|stats| stats.abandoned == 1).await;
    let all = harness.receiver.all();
    assert_eq!(all.len(), usize::try_from(MAX_ATTEMPTS).unwrap());
    for received in &all {
        let signature = received.headers[WEBHOOK_SIGNATURE_HEADER].to_str().unwrap();
        assert_eq!(
            signature::verify(&harness.sandbox.public_key(), &received.body, signature),
            Err(SignatureError::Mismatch)
        );
        let event: Event = serde_json::from_slice(&received.body).unwrap();
        assert_eq!(event.event_type, "charge.succeeded");
    }
    assert_eq!(stats.attempted, u64::from(MAX_ATTEMPTS));
    assert_eq!((stats.delivered, stats.abandoned), (0, 1));
}

#[tokio::test]
async fn the_amount_knob_makes_the_event_claim_another_amount() {
    let harness = start().await;
    let charge = harness.create_charge("order0012").await;
    let id = charge["id"].as_str().unwrap();
    harness.pay(id, "?amount=1").await;

    let delivered = harness.receiver.wait_for_delivered(1).await;
    let event = harness.verified(&delivered[0]);
    assert_eq!(event.data.object["amount"], 1);
    let (_, retrieved) = harness.get(&format!("/v1/charges/{id}")).await;
    assert_eq!(retrieved["amount"], 9900);
}

#[tokio::test]
async fn the_delay_knob_holds_the_first_delivery_back() {
    let harness = start().await;
    let charge = harness.create_charge("order0013").await;
    harness
        .pay(charge["id"].as_str().unwrap(), "?delay_ms=300")
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(harness.receiver.all().is_empty());
    harness.receiver.wait_for_delivered(1).await;
}

#[tokio::test]
async fn a_refund_is_pending_then_succeeds_with_a_signed_event() {
    let harness = start().await;
    let id = harness.paid_charge("order0014").await;

    let (status, refund) = harness
        .refund(
            &id,
            json!({"amount": 5000, "description": "customer asked", "metadata": {"refund_id": "r-1"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refund}");
    assert!(refund["id"].as_str().unwrap().starts_with("re_"));
    assert_eq!(refund["status"], "pending");
    assert_eq!(refund["amount"], 5000);
    assert_eq!(refund["charge"], id.as_str());
    assert_eq!(refund["charge_order_no"], "order0014");
    assert_eq!(refund["metadata"]["refund_id"], "r-1");

    let delivered = harness.receiver.wait_for_delivered(2).await;
    let event = harness.verified(&delivered[1]);
    assert_eq!(event.event_type, "refund.succeeded");
    assert_eq!(event.data.object["id"], refund["id"]);
    assert_eq!(event.data.object["status"], "succeeded");
    assert_eq!(event.data.object["metadata"]["refund_id"], "r-1");
    assert!(event.data.object["time_succeed"].is_i64());

    let (_, charge) = harness.get(&format!("/v1/charges/{id}")).await;
    assert_eq!(charge["amount_refunded"], 5000);
    assert_eq!(charge["refunded"], false);
    assert_eq!(charge["refunds"]["data"][0]["id"], refund["id"]);
    let refund_path = format!(
        "/v1/charges/{id}/refunds/{}",
        refund["id"].as_str().unwrap()
    );
    let (status, retrieved) = harness.get(&refund_path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retrieved["status"], "succeeded");

    // No amount: the whole rest.
    let (_, rest) = harness
        .refund(&id, json!({"description": "the rest"}))
        .await;
    assert_eq!(rest["amount"], 4900);
    harness.receiver.wait_for_delivered(3).await;
    let (_, charge) = harness.get(&format!("/v1/charges/{id}")).await;
    assert_eq!(charge["amount_refunded"], 9900);
    assert_eq!(charge["refunded"], true);
}

#[tokio::test]
async fn refunds_beyond_what_is_left_or_of_unpaid_charges_are_refused() {
    let harness = start().await;
    let unpaid = harness.create_charge("order0015").await;
    let (status, error) = harness
        .refund(unpaid["id"].as_str().unwrap(), json!({"description": "no"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["type"], "invalid_request_error");

    let id = harness.paid_charge("order0016").await;
    let (status, error) = harness
        .refund(&id, json!({"amount": 9901, "description": "too much"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["param"], "amount");

    let (status, _) = harness
        .refund(&id, json!({"amount": 5000, "description": "half"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    // The pending half counts: only 4900 is left.
    let (status, _) = harness
        .refund(&id, json!({"amount": 5000, "description": "half again"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _) = harness
        .refund("ch_unknown", json!({"description": "x"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn fail_next_refund_makes_the_next_refund_fail() {
    let harness = start().await;
    let id = harness.paid_charge("order0017").await;
    let (status, knobs) = harness
        .post("/knobs", &json!({"fail_next_refund": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(knobs["fail_next_refund"], true);
    assert_eq!(knobs["retry_base_ms"], 10);

    let (_, refund) = harness.refund(&id, json!({"description": "doomed"})).await;
    assert_eq!(refund["status"], "pending");
    let delivered = harness.receiver.wait_for_delivered(2).await;
    let event = harness.verified(&delivered[1]);
    assert_eq!(event.event_type, "refund.failed");
    assert_eq!(event.data.object["status"], "failed");
    assert_eq!(event.data.object["failure_code"], "sandbox_refund_failed");

    let (_, knobs) = harness.get("/knobs").await;
    assert_eq!(knobs["fail_next_refund"], false);
    let (_, charge) = harness.get(&format!("/v1/charges/{id}")).await;
    assert_eq!(charge["amount_refunded"], 0);

    // The failed refund frees its amount again.
    let (_, refund) = harness.refund(&id, json!({"description": "again"})).await;
    assert_eq!(refund["amount"], 9900);
    let delivered = harness.receiver.wait_for_delivered(3).await;
    assert_eq!(
        harness.verified(&delivered[2]).event_type,
        "refund.succeeded"
    );
}

#[tokio::test]
async fn knobs_out_of_bounds_or_unknown_are_refused() {
    let harness = start().await;
    let (status, error) = harness
        .post("/knobs", &json!({"retry_base_ms": 999_999}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["param"], "retry_base_ms");
    let (status, error) = harness.post("/knobs", &json!({"fail_next": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["param"], "fail_next");
    assert_eq!(harness.sandbox.knobs().retry_base_ms, 10);
}

#[tokio::test]
async fn reorder_holds_the_charge_event_until_the_next_event_has_gone_out() {
    let harness = start().await;
    let charge = harness.create_charge("order0018").await;
    let id = charge["id"].as_str().unwrap();
    let (_, payment) = harness.pay(id, "?reorder=1").await;
    settle().await;
    assert!(harness.receiver.all().is_empty());

    let (status, _) = harness.refund(id, json!({"description": "early"})).await;
    assert_eq!(status, StatusCode::OK);
    let delivered = harness.receiver.wait_for_delivered(2).await;
    let first = harness.verified(&delivered[0]);
    let second = harness.verified(&delivered[1]);
    assert_eq!(first.event_type, "refund.succeeded");
    assert_eq!(second.event_type, "charge.succeeded");
    assert_eq!(second.id, payment["event_id"].as_str().unwrap());
}

#[tokio::test]
async fn the_charge_page_shows_the_amount_and_a_pay_form() {
    let harness = start().await;
    let mut request = charge_request("order0019");
    request["subject"] = json!("<script>alert(1)</script>");
    let (status, charge) = harness.post("/v1/charges", &request).await;
    assert_eq!(status, StatusCode::OK, "{charge}");
    let id = charge["id"].as_str().unwrap();
    let page_url = format!("{}/charges/{id}", harness.base);

    let page = harness.client.get(&page_url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("99.00"), "{html}");
    let action = format!(
        "<form method=\"post\" action=\"{}/sandbox/charges/{id}/pay\">",
        harness.public_url
    );
    assert!(html.contains(&action), "{html}");
    assert!(html.contains("&lt;script&gt;"));
    assert!(!html.contains("<script>"));

    // What the browser does when the button is pressed.
    let confirmation = harness
        .client
        .post(format!("{page_url}/pay"))
        .header("accept", "text/html,application/xhtml+xml")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(confirmation.status().as_u16(), 200);
    let html = confirmation.text().await.unwrap();
    assert!(html.contains("Payment received"), "{html}");
    harness.receiver.wait_for_delivered(1).await;

    let html = harness
        .client
        .get(&page_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Paid"));
    assert!(!html.contains("<form"));

    let missing = harness
        .client
        .get(format!("{}/charges/ch_unknown", harness.base));
    assert_eq!(missing.send().await.unwrap().status().as_u16(), 404);
}

#[test]
fn amounts_are_formatted_from_fen_with_integer_math() {
    assert_eq!(pages::format_amount(9900), "99.00");
    assert_eq!(pages::format_amount(1), "0.01");
    assert_eq!(pages::format_amount(0), "0.00");
    assert_eq!(pages::format_amount(123_456), "1234.56");
    assert_eq!(pages::format_amount(-150), "-1.50");
    assert_eq!(pages::format_amount(i64::MIN), "-92233720368547758.08");
}

#[test]
fn echoed_text_is_escaped() {
    assert_eq!(
        pages::escape(r#"<a href="x">'&'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}

fn store_request(
    order_no: &str,
    time_expire: Option<i64>,
) -> gateways::pingpp::wire::CreateChargeRequest {
    let mut request = charge_request(order_no);
    if let Some(at) = time_expire {
        request["time_expire"] = json!(at);
    }
    serde_json::from_value(request).unwrap()
}

#[test]
fn paying_after_time_expire_is_refused_unless_late() {
    let mut store = Store::default();
    let now = 1_700_000_000;
    let charge = store
        .create_charge(
            store_request("order0020", Some(now + 60)),
            now,
            "http://sandbox/charges",
        )
        .unwrap();
    let id = charge["id"].as_str().unwrap();

    assert!(matches!(
        store.pay(id, now + 60, false),
        Err(SandboxError::Expired { expired_at, .. }) if expired_at == now + 60
    ));
    let paid = store.pay(id, now + 61, true).unwrap();
    assert_eq!(paid["paid"], true);
    assert_eq!(paid["time_paid"], now + 61);
}

#[test]
fn a_refund_completes_only_once() {
    let mut store = Store::default();
    let now = 1_700_000_000;
    let charge = store
        .create_charge(
            store_request("order0021", None),
            now,
            "http://sandbox/charges",
        )
        .unwrap();
    let id = charge["id"].as_str().unwrap().to_owned();
    store.pay(&id, now, false).unwrap();
    let request = serde_json::from_value(json!({"amount": 100, "description": "part"})).unwrap();
    let refund = store
        .create_refund(&id, request, now, RefundOutcome::Succeed)
        .unwrap();
    let refund_id = refund["id"].as_str().unwrap();

    assert!(store.complete_refund(refund_id, now + 1).is_some());
    assert!(store.complete_refund(refund_id, now + 2).is_none());
    assert_eq!(store.charge(&id).unwrap()["amount_refunded"], 100);
}

#[tokio::test]
async fn the_standalone_server_serves_the_sandbox_under_its_mount_path() {
    // Find a free port, then hand it to the server (it binds the address itself).
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let config = SandboxConfig {
        api_key: None,
        signing_key: signing_key(),
        webhook_url: "http://127.0.0.1:9/unused".to_owned(),
        public_url: format!("http://{addr}"),
    };
    let server = tokio::spawn(serve_standalone(addr, config));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{addr}/sandbox/v1/charges");
    let deadline = Instant::now() + Duration::from_secs(5);
    let response = loop {
        match client
            .post(&url)
            .json(&charge_request("order0022"))
            .send()
            .await
        {
            Ok(response) => break response,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "the server never answered: {error}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let (status, charge) = answer(response).await;
    assert_eq!(status, StatusCode::OK, "{charge}");
    assert_eq!(
        charge["credential"]["alipay_qr"],
        format!(
            "http://{addr}/sandbox/charges/{}",
            charge["id"].as_str().unwrap()
        )
    );
    server.abort();
}
