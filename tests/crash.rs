//! Crash safety with real processes and real signals: the ledger and a standalone sandbox
//! gateway run as separate processes, a mixed load of orders, payments, refunds and polls runs
//! against them, and the ledger is killed with SIGKILL in the middle of it and started again.
//! Afterwards every request that was answered 2xx must be in the log, nothing may have happened
//! twice, every payment the gateway took must have been confirmed (its retried webhooks finish
//! what the crash interrupted), and `payledger replay` must find the views equal to the log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gateways::pingpp::keys;
use harness::{free_port, loopback_base, Launch, Readiness, ScratchDir, ServerProcess};
use payledger::auth::{Role, TokenKeys};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::TestDb;

const BINARY: &str = env!("CARGO_BIN_EXE_payledger");
/// Forty characters: long enough for HS256.
const JWT_SECRET: &str = "crash-test-jwt-secret-0123456789-abcdefg";
const SANDBOX_API_KEY: &str = "sk_test_sandbox";
const WORKERS: usize = 8;
/// Each accepted refund gives back this much of a 9,900 fen order.
const PARTIAL_REFUND: i64 = 100;
/// Refunds asked per paid order.
const REFUNDS_PER_ORDER: u32 = 2;
/// Orders a worker keeps created but unpaid, so payments go on while the ledger is down.
const UNPAID_BACKLOG: usize = 3;
const LOAD_BEFORE_CRASH: Duration = Duration::from_millis(1500);
const LOAD_WHILE_DOWN: Duration = Duration::from_millis(400);
const LOAD_AFTER_RESTART: Duration = Duration::from_millis(1000);
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);
const DELIVERIES_TIMEOUT: Duration = Duration::from_secs(15);
/// The sandbox's first retry waits this long (then 2x, 4x, ... up to 5 s), so its eight
/// attempts span a restart.
const RETRY_BASE_MS: u64 = 100;

/// The two runs (PostgreSQL and SQLite) each start two processes and a heavy load: one at a
/// time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The two child processes and their scratch directory: killed and removed however the test
/// ends. When it ends in a panic, the children's logs are printed first.
struct Processes {
    dir: ScratchDir,
    database_url: String,
    sandbox_port: u16,
    ledger_port: u16,
    sandbox: Option<ServerProcess>,
    ledger: Option<ServerProcess>,
}

impl Processes {
    /// The standalone sandbox, ready once its own API answers.
    async fn start_sandbox(&mut self) {
        let launch = Launch::new(BINARY)
            .env_clear()
            .env("RUST_LOG", "warn")
            .env("PINGPP_API_KEY", SANDBOX_API_KEY)
            .arg("sandbox")
            .arg("--addr")
            .arg(format!("127.0.0.1:{}", self.sandbox_port))
            .arg("--webhook-url")
            .arg(format!(
                "http://127.0.0.1:{}/v1/webhooks/pingpp",
                self.ledger_port
            ))
            .arg("--private-key")
            .arg(self.dir.join("sandbox-private.pem"))
            .stdout_to(self.dir.join("sandbox.out"))
            .stderr_to(self.dir.join("sandbox.log"));
        let ready = Readiness::answers("/sandbox/knobs")
            .with_bearer(SANDBOX_API_KEY)
            .within(STARTUP_TIMEOUT);
        let sandbox = ServerProcess::start(&launch, loopback_base(self.sandbox_port), &ready)
            .await
            .unwrap_or_else(|error| panic!("the sandbox never answered: {error}"));
        self.sandbox = Some(sandbox);
    }

    /// The ledger's launch, the same for every start and for `payledger replay`.
    fn ledger_launch(&self) -> Launch {
        Launch::new(BINARY)
            .env_clear()
            .env("DATABASE_URL", &self.database_url)
            .env("PAYLEDGER_ADDR", format!("127.0.0.1:{}", self.ledger_port))
            .env("PAYLEDGER_DATA_DIR", self.dir.join("data"))
            .env("PAYLEDGER_JWT_SECRET", JWT_SECRET)
            .env("PAYMENT_PROVIDER", "pingpp")
            .env(
                "PINGPP_API_BASE",
                format!("http://127.0.0.1:{}/sandbox/v1", self.sandbox_port),
            )
            .env("PINGPP_APP_ID", "app_sandbox")
            .env("PINGPP_API_KEY", SANDBOX_API_KEY)
            .env(
                "PINGPP_PUBLIC_KEY_PATH",
                self.dir.join("sandbox-public.pem"),
            )
            .env("RUST_LOG", "warn")
    }

    /// Starts the ledger and waits until it is healthy, the sandbox still running.
    async fn start_ledger(&mut self) {
        let launch = self
            .ledger_launch()
            .stdout_to(self.dir.join("ledger.out"))
            .stderr_to(self.dir.join("ledger.log"));
        let ready = Readiness::answers("/healthz").within(STARTUP_TIMEOUT);
        let ledger = ServerProcess::start(&launch, loopback_base(self.ledger_port), &ready)
            .await
            .unwrap_or_else(|error| panic!("/healthz never answered 200: {error}"));
        self.ledger = Some(ledger);
        self.check_alive();
    }

    /// SIGKILL: no shutdown hook runs, whatever was in flight is cut off.
    fn kill_ledger(&mut self) {
        let mut ledger = self.ledger.take().expect("the ledger is running");
        let status = ledger.kill().unwrap();
        assert!(!status.success(), "the ledger exited cleanly: {status}");
    }

    /// Fails when a child has already exited (a bad configuration, a crash at start-up).
    fn check_alive(&mut self) {
        for (name, server) in [("sandbox", &mut self.sandbox), ("ledger", &mut self.ledger)] {
            if let Some(server) = server {
                if let Some(status) = server.exited().unwrap() {
                    panic!("the {name} exited early: {status}");
                }
            }
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        // Killed first, so their logs are complete; the directory goes with `dir`.
        drop(self.ledger.take());
        drop(self.sandbox.take());
        if std::thread::panicking() {
            for name in ["ledger.log", "ledger.out", "sandbox.log", "sandbox.out"] {
                if let Ok(text) = std::fs::read_to_string(self.dir.join(name)) {
                    let tail: Vec<&str> = text.lines().rev().take(40).collect();
                    eprintln!("--- {name} (last lines) ---");
                    for line in tail.into_iter().rev() {
                        eprintln!("{line}");
                    }
                }
            }
        }
    }
}

/// What the clients were told with a 2xx.
#[derive(Debug, Default)]
struct Acknowledged {
    /// 201 from `POST /v1/orders`.
    orders: Vec<String>,
    /// 200 from the sandbox's pay button: (order id, charge id).
    payments: Vec<(String, String)>,
    /// 202 from `POST /v1/orders/{id}/refunds`: (refund id, order id).
    refunds: Vec<(String, String)>,
}

/// What the load shares.
struct Load {
    ledger: String,
    sandbox: String,
    client: reqwest::Client,
    keys: TokenKeys,
    admin: String,
    acknowledged: Mutex<Acknowledged>,
    stop: AtomicBool,
}

impl Load {
    fn acknowledge(&self, record: impl FnOnce(&mut Acknowledged)) {
        record(
            &mut self
                .acknowledged
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
    }

    /// The order's QR code, polled for a while: a 201 answered while the views were lagging
    /// may have shown the order before its charge.
    async fn qr_code(&self, order_id: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let order = self.order(order_id).await;
            if let Some(qr_code) = order.as_ref().and_then(|order| order["qr_code"].as_str()) {
                return Some(qr_code.to_owned());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    async fn order(&self, order_id: &str) -> Option<Value> {
        let response = self
            .client
            .get(format!("{}/v1/orders/{order_id}", self.ledger))
            .bearer_auth(&self.admin)
            .send()
            .await
            .ok()?;
        if response.status() != StatusCode::OK {
            return None;
        }
        response.json().await.ok()
    }
}

/// The charge id at the end of a sandbox QR code URL `.../sandbox/charges/<ch_...>`.
fn charge_of(qr_code: &str) -> Option<String> {
    let (_, rest) = qr_code.split_once("/sandbox/charges/")?;
    let charge = rest.split(['?', '/', '#']).next()?;
    charge.starts_with("ch_").then(|| charge.to_owned())
}

/// One client: creates orders, pays them in the sandbox (keeping a small backlog so that
/// payments go on while the ledger is down), polls paid orders and asks partial refunds.
/// Counts the requests it made.
async fn worker(index: usize, load: Arc<Load>) -> u64 {
    let user = format!("crash-user-{index}");
    let token = load
        .keys
        .issue(
            &user,
            Role::User,
            chrono::Duration::hours(1),
            chrono::Utc::now(),
        )
        .unwrap();
    let mut unpaid: VecDeque<(String, String)> = VecDeque::new();
    // (order id, refunds asked, polls made)
    let mut paid: VecDeque<(String, u32, u32)> = VecDeque::new();
    let mut requests = 0_u64;
    let mut round = 0_u64;
    while !load.stop.load(Ordering::Relaxed) {
        round += 1;

        if unpaid.len() < UNPAID_BACKLOG {
            requests += 1;
            let created = load
                .client
                .post(format!("{}/v1/orders", load.ledger))
                .bearer_auth(&token)
                .json(&json!({"plan_id": "pro-monthly", "channel": "alipay_qr"}))
                .send()
                .await;
            if let Ok(response) = created {
                // A body cut off by the crash is no answer.
                let body = match response.status() {
                    StatusCode::CREATED => response.json::<Value>().await.ok(),
                    _ => None,
                };
                if let Some(body) = body {
                    let order_id = body["id"].as_str().unwrap().to_owned();
                    load.acknowledge(|ack| ack.orders.push(order_id.clone()));
                    let qr_code = match body["qr_code"].as_str() {
                        Some(qr_code) => Some(qr_code.to_owned()),
                        None => load.qr_code(&order_id).await,
                    };
                    match qr_code.as_deref().map(charge_of) {
                        Some(Some(charge)) => unpaid.push_back((order_id, charge)),
                        Some(None) => panic!("the QR code is no sandbox charge page: {body}"),
                        // The ledger died before it could show the charge: nothing to pay.
                        None => {}
                    }
                }
            }
        }

        if unpaid.len() >= UNPAID_BACKLOG || round % 2 == 0 {
            if let Some((order_id, charge)) = unpaid.pop_front() {
                requests += 1;
                let response = load
                    .client
                    .post(format!("{}/sandbox/charges/{charge}/pay", load.sandbox))
                    .send()
                    .await
                    .expect("the sandbox answers throughout");
                let status = response.status();
                assert_eq!(status, StatusCode::OK, "{}", response.text().await.unwrap());
                load.acknowledge(|ack| ack.payments.push((order_id.clone(), charge)));
                paid.push_back((order_id, 0, 0));
            }
        }

        if let Some((order_id, refunds, polls)) = paid.pop_front() {
            requests += 1;
            let status = load
                .order(&order_id)
                .await
                .and_then(|order| order["status"].as_str().map(str::to_owned));
            let refundable = matches!(status.as_deref(), Some("paid" | "partially_refunded"));
            let mut refunds = refunds;
            if refundable {
                requests += 1;
                let asked = load
                    .client
                    .post(format!("{}/v1/orders/{order_id}/refunds", load.ledger))
                    .bearer_auth(&load.admin)
                    .json(&json!({"amount": PARTIAL_REFUND, "reason": "crash test"}))
                    .send()
                    .await;
                if let Ok(response) = asked {
                    let body = match response.status() {
                        StatusCode::ACCEPTED => response.json::<Value>().await.ok(),
                        _ => None,
                    };
                    if let Some(body) = body {
                        let refund_id = body["id"].as_str().unwrap().to_owned();
                        load.acknowledge(|ack| ack.refunds.push((refund_id, order_id.clone())));
                    }
                }
                refunds += 1;
            }
            if refunds < REFUNDS_PER_ORDER && polls < 200 {
                paid.push_back((order_id, refunds, polls + 1));
            }
        }

        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    requests
}

async fn sandbox_get(client: &reqwest::Client, sandbox: &str, path: &str) -> Option<Value> {
    let response = client
        .get(format!("{sandbox}/sandbox/{path}"))
        .bearer_auth(SANDBOX_API_KEY)
        .send()
        .await
        .ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    response.json().await.ok()
}

/// The facts the checks need, read from the whole log.
#[derive(Debug, Default)]
struct Log {
    events: usize,
    orders_created: HashSet<String>,
    /// Orders whose charge was recorded (`ChargeRequested`).
    orders_charged: HashSet<String>,
    refunds_requested: HashSet<String>,
    /// Refunds the gateway answered (`Refunded` or `RefundFailed`).
    refunds_settled: HashSet<String>,
    /// Order id -> charge ids of its `PaymentConfirmed` events.
    confirmations: HashMap<String, Vec<String>>,
    /// Order id -> how many `MembershipActivated`/`MembershipExtended` name it.
    memberships: HashMap<String, usize>,
}

impl Log {
    async fn read(db: &TestDb) -> Self {
        let mut log = Log::default();
        let mut after = 0;
        loop {
            let batch = projections::log::read_after(&db.store.read, after, 500)
                .await
                .unwrap();
            let Some(last) = batch.last() else {
                return log;
            };
            after = last.position;
            for event in &batch {
                log.add(event);
            }
        }
    }

    fn add(&mut self, event: &projections::log::StoredEvent) {
        self.events += 1;
        let kind = event.event_type.as_str();
        // The stored form is externally tagged: {"PaymentConfirmed": {...}}.
        let fields = event.payload.get(kind).unwrap_or(&event.payload);
        let field = |name: &str| {
            fields[name]
                .as_str()
                .unwrap_or_else(|| panic!("{kind} without {name}: {}", event.payload))
                .to_owned()
        };
        match kind {
            "OrderCreated" => {
                self.orders_created.insert(event.aggregate_id.clone());
            }
            "ChargeRequested" => {
                self.orders_charged.insert(event.aggregate_id.clone());
            }
            "RefundRequested" => {
                self.refunds_requested.insert(field("refund_id"));
            }
            "Refunded" | "RefundFailed" => {
                self.refunds_settled.insert(field("refund_id"));
            }
            "PaymentConfirmed" => self
                .confirmations
                .entry(event.aggregate_id.clone())
                .or_default()
                .push(field("charge_id")),
            "MembershipActivated" | "MembershipExtended" => {
                *self.memberships.entry(field("order_id")).or_default() += 1;
            }
            _ => {}
        }
    }
}

async fn survives_a_crash(db: &TestDb) {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let dir = ScratchDir::new("crash").unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    write_keys(dir.path());
    let mut processes = Processes {
        dir,
        database_url: db.url.as_str().to_owned(),
        sandbox_port: free_port().unwrap(),
        ledger_port: free_port().unwrap(),
        sandbox: None,
        ledger: None,
    };

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap();
    let sandbox = format!("http://127.0.0.1:{}", processes.sandbox_port);
    let ledger = format!("http://127.0.0.1:{}", processes.ledger_port);

    processes.start_sandbox().await;
    let knobs = client
        .post(format!("{sandbox}/sandbox/knobs"))
        .bearer_auth(SANDBOX_API_KEY)
        .json(&json!({"retry_base_ms": RETRY_BASE_MS}))
        .send()
        .await
        .unwrap();
    assert_eq!(knobs.status(), StatusCode::OK);

    processes.start_ledger().await;
    let setup = started.elapsed();

    let keys = TokenKeys::from_secret(JWT_SECRET.as_bytes());
    let admin = keys
        .issue(
            "crash-ops",
            Role::Admin,
            chrono::Duration::hours(1),
            chrono::Utc::now(),
        )
        .unwrap();
    let load = Arc::new(Load {
        ledger: ledger.clone(),
        sandbox: sandbox.clone(),
        client: client.clone(),
        keys,
        admin,
        acknowledged: Mutex::new(Acknowledged::default()),
        stop: AtomicBool::new(false),
    });
    let workers: Vec<_> = (0..WORKERS)
        .map(|index| tokio::spawn(worker(index, load.clone())))
        .collect();

    tokio::time::sleep(LOAD_BEFORE_CRASH).await;
    processes.kill_ledger();
    let killed_at = Instant::now();
    tokio::time::sleep(LOAD_WHILE_DOWN).await;
    processes.start_ledger().await;
    let downtime = killed_at.elapsed();
    tokio::time::sleep(LOAD_AFTER_RESTART).await;
    load.stop.store(true, Ordering::Relaxed);
    let mut requests = 0;
    for worker in workers {
        requests += worker.await.unwrap();
    }
    let load_ended = started.elapsed();

    let (orders, payments, refunds) = {
        let ack = load.acknowledged.lock().unwrap();
        (
            ack.orders.clone(),
            ack.payments.clone(),
            ack.refunds.clone(),
        )
    };
    assert!(
        !orders.is_empty() && !payments.is_empty() && !refunds.is_empty(),
        "the load did too little: {} orders, {} payments, {} refunds",
        orders.len(),
        payments.len(),
        refunds.len()
    );

    // Settle: every paid charge's order shows the payment, and the gateway has answered every
    // accepted refund (both arrive by the sandbox's webhooks, retried across the crash).
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut unsettled: Vec<&(String, String)> = payments.iter().collect();
    while !unsettled.is_empty() {
        let mut still = Vec::new();
        for payment in unsettled {
            let status = load
                .order(&payment.0)
                .await
                .and_then(|order| order["status"].as_str().map(str::to_owned));
            if !matches!(
                status.as_deref(),
                Some("paid" | "partially_refunded" | "refunded")
            ) {
                still.push(payment);
            }
        }
        unsettled = still;
        if unsettled.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} paid charges never confirmed their orders, e.g. order {} charge {}",
            unsettled.len(),
            unsettled[0].0,
            unsettled[0].1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut log = Log::read(db).await;
    while refunds
        .iter()
        .any(|(refund_id, _)| !log.refunds_settled.contains(refund_id))
    {
        assert!(
            Instant::now() < deadline,
            "accepted refunds the gateway never answered: {:?}",
            refunds
                .iter()
                .filter(|(refund_id, _)| !log.refunds_settled.contains(refund_id))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        log = Log::read(db).await;
    }

    // The sandbox's deliveries have drained: its counts stay put for a second.
    let deadline = Instant::now() + DELIVERIES_TIMEOUT;
    let mut deliveries = sandbox_get(&client, &sandbox, "deliveries").await.unwrap();
    let mut unchanged_since = Instant::now();
    while unchanged_since.elapsed() < Duration::from_secs(1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = sandbox_get(&client, &sandbox, "deliveries").await.unwrap();
        if now != deliveries {
            deliveries = now;
            unchanged_since = Instant::now();
        }
    }
    assert_eq!(
        deliveries["abandoned"], 0,
        "webhooks given up: {deliveries}"
    );
    assert!(
        deliveries["failed"].as_u64().unwrap() > 0,
        "no webhook delivery failed, so none was retried across the crash: {deliveries}"
    );
    let settled = started.elapsed();

    // Now the log, read directly.
    let log = Log::read(db).await;
    for order_id in &orders {
        assert!(
            log.orders_created.contains(order_id),
            "order {order_id} was answered 201 but has no OrderCreated"
        );
    }
    for (refund_id, order_id) in &refunds {
        assert!(
            log.refunds_requested.contains(refund_id),
            "refund {refund_id} of order {order_id} was answered 202 but has no RefundRequested"
        );
    }
    for (order_id, charges) in &log.confirmations {
        assert_eq!(
            charges.len(),
            1,
            "order {order_id} was confirmed more than once: {charges:?}"
        );
    }
    for (order_id, count) in &log.memberships {
        assert_eq!(
            *count, 1,
            "order {order_id} activated or extended a membership {count} times"
        );
    }
    for (order_id, charge) in &payments {
        assert_eq!(
            log.confirmations.get(order_id).map(Vec::as_slice),
            Some(std::slice::from_ref(charge)),
            "the sandbox took charge {charge} for order {order_id}, but no PaymentConfirmed says so"
        );
    }
    let paid_orders: HashSet<&String> = payments.iter().map(|(order_id, _)| order_id).collect();
    for order_id in log.memberships.keys() {
        assert!(
            log.confirmations.contains_key(order_id),
            "order {order_id} bought a membership without a confirmed payment"
        );
    }

    // The views equal the log.
    let replay = harness::run(&processes.ledger_launch().arg("replay")).unwrap();
    let replay_text = &replay.stdout;
    assert!(replay.status.success(), "{}", replay.failure());
    assert!(replay_text.contains("views equal the log"), "{replay_text}");

    // What the crash cut off between two steps of one request (its client got no 2xx): an
    // order recorded before its charge, a refund recorded before the gateway was asked.
    let uncharged = log.orders_created.difference(&log.orders_charged).count();
    let unsent_refunds = log
        .refunds_requested
        .difference(&log.refunds_settled)
        .count();
    println!(
        "crash test ({}): cut off mid-request: {uncharged} orders without a charge, \
         {unsent_refunds} refunds never answered by the gateway",
        db.url.kind()
    );
    println!(
        "crash test ({}): {} requests in {load_ended:.1?} (set-up {setup:.1?}, down for \
         {downtime:.1?}), settled at {settled:.1?}, {} events, sandbox deliveries {deliveries}, \
         total {:.1?}",
        db.url.kind(),
        requests,
        log.events,
        started.elapsed()
    );
    println!(
        "crash test: {} orders, {} payments, {} refunds, 1 crash survived, replay clean",
        orders.len(),
        paid_orders.len(),
        refunds.len()
    );
    drop(processes);
}

/// The sandbox's signing key: the private half for the sandbox, the public half for the ledger.
fn write_keys(dir: &Path) {
    let key = keys::generate().unwrap();
    std::fs::write(
        dir.join("sandbox-private.pem"),
        keys::private_key_to_pem(&key).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("sandbox-public.pem"),
        keys::public_key_to_pem(&key.to_public_key()).unwrap(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres() {
    let db = TestDb::postgres().await;
    survives_a_crash(&db).await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite() {
    let db = TestDb::sqlite().await;
    survives_a_crash(&db).await;
    db.finish().await;
}
