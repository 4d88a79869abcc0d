//! A service spawned on an ephemeral port with the in-process sandbox gateway, and the
//! client-side steps tests take through it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;
use gateways::config::GatewayConfig;
use gateways::pingpp::keys;
use payledger::auth::{Role, TokenKeys};
use payledger::ledger::{CreationQuota, QuotaSettings};
use payledger::limits::OrderLimits;
use payledger::merchant::MerchantSettings;
use payledger::server::{GatewaySetup, Service};
use payledger::store::{Actor, EventMetadata, Source};
use payledger::AppState;
use reqwest::StatusCode;
use rsa::RsaPrivateKey;
use sandbox::Sandbox;
use serde_json::{json, Value};

use crate::helpers::TestDb;

/// One sandbox signing key per test run: key generation is slow.
pub fn sandbox_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| keys::generate().unwrap())
}

/// The merchant key the sandbox's Alipay and WeChat Pay protocols know the service by.
pub fn sandbox_merchant_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| keys::generate().unwrap())
}

/// The key that signs the published head (`PAYLEDGER_AUDIT_KEY_PATH` in production).
pub fn audit_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| keys::generate().unwrap())
}

/// The in-process sandbox with the test keys, every channel speaking Ping++'s protocol.
pub fn sandbox_setup(base: &str) -> GatewaySetup {
    let mut gateway = GatewayConfig::from_lookup(|_| None, base).unwrap();
    gateway.sandbox_private_key = Some(sandbox_key().clone());
    let mut setup = GatewaySetup::from(gateway);
    setup.sandbox_merchant_key = Some(sandbox_merchant_key().clone());
    setup
}

pub const SECRET: &[u8] = b"a-test-secret-that-is-long-enough-for-hs256";

/// A service on an ephemeral port.
pub struct App {
    pub base: String,
    pub state: AppState,
    pub sandbox: Option<Sandbox>,
    pub client: reqwest::Client,
    pub keys: TokenKeys,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl App {
    /// The service with its in-process sandbox gateway.
    pub async fn spawn(db: &TestDb) -> Self {
        Self::spawn_configured(db, |_| {}).await
    }

    /// The service with its in-process sandbox, set up by `configure` (e.g. a channel
    /// speaking another provider's protocol).
    pub async fn spawn_sandbox(db: &TestDb, configure: impl FnOnce(&mut GatewaySetup)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut setup = sandbox_setup(&base);
        configure(&mut setup);
        Self::start_with_setup(db.store.clone(), listener, base, &setup, |_| {}, None).await
    }

    /// A second server on the same database, with its own connections, using `first`'s
    /// sandbox as its (production-style) Ping++ gateway: two instances behind one gateway.
    pub async fn spawn_second(db: &TestDb, first: &App) -> Self {
        Self::spawn_second_via(db, &format!("{}/sandbox/v1", first.base)).await
    }

    /// Like `spawn_second`, reaching the sandbox's Ping++ API at `api_base` (e.g. through a
    /// proxy the test can cut).
    pub async fn spawn_second_via(db: &TestDb, api_base: &str) -> Self {
        let store = payledger::store::Store::connect(&db.url).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let key_path =
            std::env::temp_dir().join(format!("payledger-sandbox-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(
            &key_path,
            keys::public_key_to_pem(&sandbox_key().to_public_key()).unwrap(),
        )
        .unwrap();
        let api_base = api_base.to_owned();
        let key_text = key_path.display().to_string();
        let gateway = GatewayConfig::from_lookup(
            |name| match name {
                "PAYMENT_PROVIDER" => Some("pingpp".to_owned()),
                "PINGPP_API_BASE" => Some(api_base.clone()),
                "PINGPP_APP_ID" => Some("app_sandbox".to_owned()),
                "PINGPP_API_KEY" => Some("sk_test_sandbox".to_owned()),
                "PINGPP_PUBLIC_KEY_PATH" => Some(key_text.clone()),
                _ => None,
            },
            &base,
        )
        .unwrap();
        let _ = std::fs::remove_file(&key_path);
        Self::start(store, listener, base, &gateway).await
    }

    /// The service with the given gateway configuration.
    pub async fn spawn_with(
        db: &TestDb,
        listener: tokio::net::TcpListener,
        base: String,
        gateway: &GatewayConfig,
    ) -> Self {
        Self::start(db.store.clone(), listener, base, gateway).await
    }

    async fn start(
        store: payledger::store::Store,
        listener: tokio::net::TcpListener,
        base: String,
        gateway: &GatewayConfig,
    ) -> Self {
        let setup = GatewaySetup::from(gateway.clone());
        Self::start_with_setup(store, listener, base, &setup, |_| {}, None).await
    }

    /// The service with the in-process sandbox and the given per-user creation quota (the
    /// other constructors lift it, so tests about other things may create many orders).
    pub async fn spawn_with_quota(db: &TestDb, quota: QuotaSettings) -> Self {
        Self::spawn_configured(db, |state| {
            state.quota = std::sync::Arc::new(CreationQuota::new(quota));
        })
        .await
    }

    /// The service with the in-process sandbox, its state adjusted by `configure` before it
    /// serves (checkout settings, a catalog of its own, a quota).
    pub async fn spawn_configured(db: &TestDb, configure: impl FnOnce(&mut AppState)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let setup = sandbox_setup(&base);
        Self::start_with_setup(db.store.clone(), listener, base, &setup, configure, None).await
    }

    /// The service with the in-process sandbox and the given order limits.
    pub async fn spawn_limited(db: &TestDb, limits: OrderLimits) -> Self {
        Self::spawn_configured(db, move |state| state.limits = limits).await
    }

    /// The service with its in-process sandbox, telling the merchant as `merchant` says.
    pub async fn spawn_merchant(db: &TestDb, merchant: &MerchantSettings) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let setup = sandbox_setup(&base);
        let store = db.store.clone();
        Self::start_with_setup(store, listener, base, &setup, |_| {}, Some(merchant)).await
    }

    /// The service with its in-process sandbox, selling from `catalog`, on connections of its
    /// own (so it may follow a server that was stopped on the same database).
    pub async fn spawn_with_catalog(db: &TestDb, catalog: aggregates::PlanCatalog) -> Self {
        let store = payledger::store::Store::connect(&db.url).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let setup = sandbox_setup(&base);
        let sell = move |state: &mut AppState| state.catalog = std::sync::Arc::new(catalog);
        Self::start_with_setup(store, listener, base, &setup, sell, None).await
    }

    /// Another server on the same database, with its own connections and its own in-process
    /// sandbox, telling the merchant too: two instances sharing one ledger.
    pub async fn spawn_another_merchant(db: &TestDb, merchant: &MerchantSettings) -> Self {
        let store = payledger::store::Store::connect(&db.url).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let setup = sandbox_setup(&base);
        Self::start_with_setup(store, listener, base, &setup, |_| {}, Some(merchant)).await
    }

    /// Starts the service; tests about other things may create many orders, so the per-user
    /// quota is lifted before `configure` runs. With `merchant`, it also tells the merchant.
    async fn start_with_setup(
        store: payledger::store::Store,
        listener: tokio::net::TcpListener,
        base: String,
        setup: &GatewaySetup,
        configure: impl FnOnce(&mut AppState),
        merchant: Option<&MerchantSettings>,
    ) -> Self {
        let keys = TokenKeys::from_secret(SECRET);
        let mut service = Service::start(store, keys.clone(), &base, setup)
            .await
            .unwrap();
        service.state.quota = std::sync::Arc::new(CreationQuota::new(QuotaSettings::unbounded()));
        service.state.audit_key = Some(std::sync::Arc::new(audit_key().clone()));
        configure(&mut service.state);
        if let Some(merchant) = merchant {
            service.spawn_merchant(merchant).await.unwrap();
        }
        let state = service.state.clone();
        let sandbox = service.sandbox.clone();
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(service.serve(listener, async move {
            let _ = receiver.await;
        }));
        Self {
            base,
            state,
            sandbox,
            client: crate::helpers::http_client(),
            keys,
            shutdown: Some(sender),
        }
    }

    pub fn token(&self, user: &str, role: Role) -> String {
        self.keys
            .issue(user, role, chrono::Duration::hours(1), Utc::now())
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str, user: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(self.token(user, Role::User))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_as_admin(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(self.token("auditor", Role::Admin))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Posts `body` to the Ping++ webhook path with each of `signatures` as a signature
    /// header; the answer carries what the ledger made of it (the `X-Webhook-Outcome` header)
    /// as `outcome`, next to the provider's reply.
    pub async fn deliver_pingpp(&self, body: &[u8], signatures: &[&str]) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(self.url("/v1/webhooks/pingpp"))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for signature in signatures {
            request = request.header("x-pingplusplus-signature", *signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let outcome = response
            .headers()
            .get("x-webhook-outcome")
            .map(|value| value.to_str().unwrap().to_owned());
        let mut answer = response.json().await.unwrap_or(Value::Null);
        if let (Some(outcome), Some(object)) = (outcome, answer.as_object_mut()) {
            object.insert("outcome".to_owned(), Value::String(outcome));
        }
        (status, answer)
    }

    pub async fn create_order(&self, user: &str) -> Value {
        let token = self.token(user, Role::User);
        let (status, body) = self
            .post(
                "/v1/orders",
                &token,
                json!({"plan_id": "pro-monthly", "channel": "alipay_qr"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Plays the customer paying in the sandbox; the sandbox then sends the signed webhook.
    pub async fn pay(&self, order: &Value, knobs: &str) -> Value {
        let order_id = order["id"].as_str().unwrap();
        let charge = self.charge_of(order_id).await;
        let response = self
            .client
            .post(self.url(&format!("/sandbox/charges/{charge}/pay?{knobs}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn confirm_payment(&self, order: &Value, amount: i64) {
        let price = order["amount"].as_i64().unwrap();
        let knobs = if amount == price {
            String::new()
        } else {
            format!("amount={amount}")
        };
        self.pay(order, &knobs).await;
    }

    pub async fn charge_of(&self, order_id: &str) -> String {
        projections::order_status::find(
            &self.state.store.read,
            &projections::Tables::live(),
            order_id,
        )
        .await
        .unwrap()
        .unwrap()
        .charge_id
        .unwrap()
    }

    /// Polls an order until `check` holds, as the frontend does (but faster).
    pub async fn poll_until(
        &self,
        order_id: &str,
        user: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (status, body) = self.get(&format!("/v1/orders/{order_id}"), user).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if check(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order never reached the state: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Ping++ event around `object`, serialised once.
pub fn pingpp_event_body(event_id: &str, event_type: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": event_id,
        "object": "event",
        "created": 1_795_000_000,
        "livemode": false,
        "type": event_type,
        "data": { "object": object },
        "pending_webhooks": 0,
        "request": "iar_test",
    }))
    .unwrap()
}

pub fn gateway_metadata(event_id: &str) -> EventMetadata {
    EventMetadata {
        request_id: format!("test-{event_id}"),
        actor: Actor::Gateway,
        source: Source::Webhook,
        gateway_event_id: Some(event_id.to_owned()),
        recorded_at: Utc::now(),
    }
}

pub async fn audit_is_clean(db: &TestDb) {
    let report = projections::replay::audit(&db.store.read).await.unwrap();
    assert!(
        report.is_clean(),
        "views differ from the log: {:?}",
        report.differences
    );
}
