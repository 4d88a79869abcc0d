//! Two real server processes on one database: a burst of 100 identical signed webhooks,
//! spread over both, records one payment, one membership and one refund.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use gateways::pingpp::{keys, signature};
use harness::{free_port, loopback_base, Launch, Readiness, ScratchDir, ServerProcess};
use payledger::auth::{Role, TokenKeys};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::TestDb;

const BINARY: &str = env!("CARGO_BIN_EXE_payledger");
const JWT_SECRET: &str = "two-processes-jwt-secret-0123456789-abcdef";
const DELIVERIES: usize = 100;

/// The server processes and their scratch directory, killed and removed however the test ends.
struct Servers {
    servers: Vec<ServerProcess>,
    dir: ScratchDir,
}

impl Servers {
    /// Starts `count` servers on one database, then waits until each is healthy.
    async fn start(database_url: &str, count: usize) -> Self {
        let dir = ScratchDir::new("two").unwrap();
        let key = keys::generate().unwrap();
        let key_path = dir.join("sandbox.pem");
        std::fs::write(&key_path, keys::private_key_to_pem(&key).unwrap()).unwrap();
        let mut servers = Vec::new();
        for index in 0..count {
            let port = free_port().unwrap();
            let launch = Launch::new(BINARY)
                .env_clear()
                .env("DATABASE_URL", database_url)
                .env("PAYLEDGER_ADDR", format!("127.0.0.1:{port}"))
                .env("PAYLEDGER_DATA_DIR", dir.join(format!("data{index}")))
                .env("PAYLEDGER_JWT_SECRET", JWT_SECRET)
                // Both sign (and so verify) sandbox webhooks with the same key.
                .env("SANDBOX_PRIVATE_KEY_PATH", &key_path)
                .env("RUST_LOG", "warn")
                .stderr_to(dir.join(format!("server{index}.log")));
            servers.push(ServerProcess::spawn(&launch, loopback_base(port)).unwrap());
        }
        let ready = Readiness::answers("/healthz").within(Duration::from_secs(30));
        for (index, server) in servers.iter_mut().enumerate() {
            server
                .wait_ready(&ready)
                .await
                .unwrap_or_else(|error| panic!("server {index} did not start: {error}"));
        }
        Self { servers, dir }
    }

    fn url(&self, index: usize, path: &str) -> String {
        self.servers[index].url(path)
    }

    fn key(&self) -> rsa::RsaPrivateKey {
        keys::private_key_from_file(&self.dir.join("sandbox.pem")).unwrap()
    }
}

async fn burst(client: &reqwest::Client, servers: &Servers, body: &[u8], signature: &str) {
    let mut tasks = Vec::new();
    for index in 0..DELIVERIES {
        let request = client
            .post(servers.url(index % servers.servers.len(), "/v1/webhooks/pingpp"))
            .header("content-type", "application/json")
            .header("x-pingplusplus-signature", signature)
            .body(body.to_vec());
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    for task in tasks {
        let status = task.await.unwrap();
        assert!(status.is_success(), "a delivery was answered {status}");
    }
}

async fn count(db: &TestDb, event_type: &str) -> i64 {
    sqlx::query("SELECT CAST(count(*) AS BIGINT) AS n FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(&db.store.read)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

fn event(
    event_id: &str,
    event_type: &str,
    object: Value,
    key: &rsa::RsaPrivateKey,
) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(&json!({
        "id": event_id, "object": "event", "created": 1_795_000_000, "livemode": false,
        "type": event_type, "data": { "object": object }, "pending_webhooks": 0,
    }))
    .unwrap();
    let signed = signature::sign(key, &body);
    (body, signed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_over_two_server_processes_pays_activates_and_refunds_once() {
    let db = TestDb::postgres().await;
    let servers = Servers::start(db.url.as_str(), 2).await;
    let client = crate::helpers::http_client();
    let tokens = TokenKeys::from_secret(JWT_SECRET.as_bytes());
    let user = tokens
        .issue(
            "xena",
            Role::User,
            chrono::Duration::hours(1),
            chrono::Utc::now(),
        )
        .unwrap();
    let admin = tokens
        .issue(
            "ops",
            Role::Admin,
            chrono::Duration::hours(1),
            chrono::Utc::now(),
        )
        .unwrap();

    let order: Value = client
        .post(servers.url(0, "/v1/orders"))
        .bearer_auth(&user)
        .json(&json!({"plan_id": "pro-monthly", "channel": "wx_pub_qr"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_id = order["id"].as_str().unwrap().to_owned();
    let qr = order["qr_code"].as_str().unwrap();
    let charge = qr
        .split("/sandbox/charges/")
        .nth(1)
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    // The customer pays; the sandbox's own notice is held back so the burst is the only one.
    let paid = client
        .post(format!("{}/pay?drop=1", qr.split('?').next().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), StatusCode::OK);

    let order_no = order_id.replace('-', "");
    let (body, signed) = event(
        "evt_two_processes_pay",
        "charge.succeeded",
        json!({"id": charge, "object": "charge", "paid": true, "channel": "wx_pub_qr",
               "order_no": order_no, "amount": 9900, "currency": "cny", "time_paid": 1_795_000_100}),
        &servers.key(),
    );
    burst(&client, &servers, &body, &signed).await;
    assert_eq!(count(&db, "PaymentConfirmed").await, 1);

    // Each process runs its own in-process sandbox; the charge lives in the first one's.
    let refund: Value = client
        .post(servers.url(0, &format!("/v1/orders/{order_id}/refunds")))
        .bearer_auth(&admin)
        .json(&json!({"amount": 9900, "reason": "two processes"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refund["status"], "pending", "{refund}");
    let (body, signed) = event(
        "evt_two_processes_refund",
        "refund.succeeded",
        json!({"id": refund["gateway_refund_id"], "object": "refund", "amount": 9900,
               "status": "succeeded", "charge": charge, "charge_order_no": order_no,
               "time_succeed": 1_795_000_200, "metadata": {"refund_id": refund["id"]}}),
        &servers.key(),
    );
    burst(&client, &servers, &body, &signed).await;

    // Memberships follow by process manager, in whichever process gets there first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while count(&db, "MembershipRevoked").await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the membership was never revoked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&db, "Refunded").await, 1);
    assert_eq!(count(&db, "MembershipActivated").await, 1);
    assert_eq!(count(&db, "MembershipRevoked").await, 1);
    for index in 0..2 {
        let view: Value = client
            .get(servers.url(index, &format!("/v1/orders/{order_id}")))
            .bearer_auth(&user)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(view["status"], "refunded", "server {index}: {view}");
    }
    println!("two processes: {} deliveries each of a payment and a refund: 1 payment, 1 membership, 1 refund", DELIVERIES);
    drop(servers);
    db.finish().await;
}
