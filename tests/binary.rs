//! The real binary: development mode and its sandbox key, the `token` command, SIGTERM, log
//! output and the data directory's permissions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use gateways::pingpp::keys;
use harness::{free_port, loopback_base, Launch, Readiness, ScratchDir, ServerProcess};
use payledger::auth::{Role, TokenKeys};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::app::sandbox_key;
use crate::slow_clients::read_until_closed;

const BINARY: &str = env!("CARGO_BIN_EXE_payledger");

/// The real binary on embedded SQLite in a scratch directory, logging to files there. The
/// server goes before its directory however the test ends.
struct Binary {
    server: ServerProcess,
    dir: ScratchDir,
}

impl Binary {
    fn scratch() -> ScratchDir {
        ScratchDir::new("ops").unwrap()
    }

    /// A launch in `dir` (so no `.env` of the repository is read), with nothing inherited.
    fn launch(dir: &Path, env: &[(&str, &str)]) -> Launch {
        let key_path = dir.join("sandbox.pem");
        if !key_path.exists() {
            std::fs::write(&key_path, keys::private_key_to_pem(sandbox_key()).unwrap()).unwrap();
        }
        Launch::new(BINARY)
            .current_dir(dir)
            .env_clear()
            .env("PAYLEDGER_DATA_DIR", dir.join("data"))
            .env("SANDBOX_PRIVATE_KEY_PATH", &key_path)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
    }

    async fn start(env: &[(&str, &str)]) -> Self {
        Self::start_in(Self::scratch(), env).await
    }

    /// A server in `dir`, which may hold the data directory of one that ran before.
    async fn start_in(dir: ScratchDir, env: &[(&str, &str)]) -> Self {
        let port = free_port().unwrap();
        let launch = Self::launch(dir.path(), env)
            .env("PAYLEDGER_ADDR", format!("127.0.0.1:{port}"))
            .stdout_to(dir.join("stdout.log"))
            .stderr_to(dir.join("stderr.log"));
        let server = ServerProcess::start(
            &launch,
            loopback_base(port),
            &Readiness::answers("/healthz"),
        )
        .await
        .unwrap_or_else(|error| panic!("the server did not start: {error}"));
        Self { server, dir }
    }

    fn base(&self) -> &str {
        self.server.base()
    }

    fn stderr(&self) -> String {
        self.server.stderr()
    }

    fn stdout(&self) -> String {
        self.server.stdout()
    }

    /// The demo checkout link the server printed at start-up.
    fn demo_checkout_link(&self) -> String {
        let stdout = self.stdout();
        stdout
            .lines()
            .skip_while(|line| !line.starts_with("Demo checkout for user demo-user"))
            .nth(1)
            .unwrap_or_else(|| panic!("no demo checkout link printed: {stdout}"))
            .trim()
            .to_owned()
    }

    fn terminate(&self) {
        self.server.signal_terminate().unwrap();
    }

    async fn wait(&mut self) -> std::process::ExitStatus {
        self.server
            .wait_exit(Duration::from_secs(20))
            .await
            .unwrap_or_else(|error| panic!("the server did not exit after SIGTERM: {error}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_sandbox_api_needs_the_key_printed_at_start_up() {
    let server = Binary::start(&[]).await;
    let key = std::fs::read_to_string(server.dir.join("data").join("sandbox_api_key")).unwrap();
    let key = format!("sk_test_{}", key.trim());
    assert!(
        server.stderr().contains(&key),
        "the key is not printed: {}",
        server.stderr()
    );
    let client = crate::helpers::http_client();
    for path in [
        "/sandbox/knobs",
        "/sandbox/deliveries",
        "/sandbox/v1/charges/ch_00000000000000000000000",
    ] {
        let open = client
            .get(format!("{}{path}", server.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(open.status(), StatusCode::UNAUTHORIZED, "{path} is open");
        let wrong = client
            .get(format!("{}{path}", server.base()))
            .bearer_auth("sk_test_sandbox")
            .send()
            .await
            .unwrap();
        assert_eq!(
            wrong.status(),
            StatusCode::UNAUTHORIZED,
            "{path} takes the old default key"
        );
    }
    let knobs = client
        .get(format!("{}/sandbox/knobs", server.base()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(knobs.status(), StatusCode::OK);
    // The ledger's own client uses the same key: an order gets its charge.
    let secret = std::fs::read(server.dir.join("data").join("jwt_secret")).unwrap();
    let token = TokenKeys::from_secret(secret.trim_ascii())
        .issue(
            "dora",
            Role::User,
            chrono::Duration::hours(1),
            chrono::Utc::now(),
        )
        .unwrap();
    let order = client
        .post(format!("{}/v1/orders", server.base()))
        .bearer_auth(token)
        .json(&json!({"plan_id": "pro-monthly", "channel": "alipay_qr"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        order.status(),
        StatusCode::CREATED,
        "{}",
        order.text().await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_command_uses_the_servers_secret_or_says_where_it_looked() {
    use std::os::unix::fs::PermissionsExt;

    let elsewhere = Binary::scratch();
    let output =
        harness::run(&Binary::launch(elsewhere.path(), &[]).args(["token", "--user", "alice"]))
            .unwrap();
    let stderr = &output.stderr;
    assert!(!output.status.success());
    assert!(stderr.contains("PAYLEDGER_JWT_SECRET"), "{stderr}");
    assert!(
        stderr.contains(
            &elsewhere
                .join("data")
                .join("jwt_secret")
                .display()
                .to_string()
        ),
        "{stderr}"
    );
    assert!(
        !elsewhere.join("data").exists(),
        "the token command made a data directory"
    );
    drop(elsewhere);

    let server = Binary::start(&[]).await;
    let data = server.dir.join("data");
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let database = std::fs::metadata(data.join("payledger.db")).unwrap();
    assert_eq!(database.permissions().mode() & 0o777, 0o600);
    let output =
        harness::run(&Binary::launch(server.dir.path(), &[]).args(["token", "--user", "alice"]))
            .unwrap();
    assert!(output.status.success(), "{}", output.stderr);
    let token = output.stdout;
    let answer = reqwest::Client::new()
        .get(format!("{}/v1/membership", server.base()))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        StatusCode::OK,
        "a token from the CLI is refused by the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_request_in_flight_then_exits_zero_saying_so() {
    let mut server = Binary::start(&[]).await;
    let addr = server.base().trim_start_matches("http://").to_owned();
    // A request in flight: headers sent, body not yet complete.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.write_all(b"}").await.unwrap();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 401"),
        "the request in flight was dropped: {answer}"
    );
    let status = server.wait().await;
    let stderr = server.stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert!(stderr.contains("draining"), "{stderr}");
    assert!(stderr.contains("payledger stopped"), "{stderr}");
    // Not a terminal: no colour escapes.
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    // The development banner and the sandbox key, on standard error.
    assert!(stderr.contains("DEVELOPMENT MODE"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let mut server = Binary::start(&[("PAYLEDGER_LOG_FORMAT", "json")]).await;
    server.terminate();
    assert_eq!(server.wait().await.code(), Some(0));
    let stderr = server.stderr();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert!(lines.len() >= 3, "{stderr}");
    for line in lines {
        let object: Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"));
        assert!(
            object["level"].is_string() && object["fields"].is_object(),
            "{line}"
        );
    }
    assert!(server.stdout().contains("DEVELOPMENT MODE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_a_checkout_link_a_browser_can_pay_through() {
    let server = Binary::start(&[]).await;
    let url = server.demo_checkout_link();
    assert!(
        url.starts_with(&format!("{}/checkout/", server.base())),
        "{url}"
    );
    let client = crate::helpers::http_client();
    let page = client.get(&url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("收银台"));
    let order = client
        .post(format!("{url}/orders"))
        .json(&json!({"plan_id": "pro-monthly", "channel": "alipay_qr"}))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), StatusCode::CREATED);
    let order: serde_json::Value = order.json().await.unwrap();
    assert_eq!(order["status"], "pending");
    assert!(order["sandbox_pay_url"].is_string(), "{order}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_keeps_its_signing_key_so_verify_checks_what_it_signed() {
    // No configured sandbox key: the server makes one and keeps it in its data directory.
    let unset = [("SANDBOX_PRIVATE_KEY_PATH", "")];
    let server = Binary::start(&unset).await;
    let kept = server.dir.join("data").join("sandbox_signing_key.pem");
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let url = server.demo_checkout_link();
    let client = crate::helpers::http_client();
    let order: Value = client
        .post(format!("{url}/orders"))
        .json(&json!({"plan_id": "pro-monthly", "channel": "alipay_qr"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pay_page = order["sandbox_pay_url"]
        .as_str()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let paid = client.post(format!("{pay_page}/pay")).send().await.unwrap();
    assert_eq!(paid.status(), StatusCode::OK);

    // The payment's webhook, signed with the kept key, verifies again with nothing configured.
    let verify = Binary::launch(server.dir.path(), &unset).arg("verify");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = harness::run(&verify).unwrap();
        if run.code() == 0 && run.stdout.contains("evidence: 1 webhook(s)") {
            break;
        }
        assert!(Instant::now() < deadline, "{}{}", run.stdout, run.stderr);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A restart signs with the same key.
    let before = std::fs::read(&kept).unwrap();
    let Binary { mut server, dir } = server;
    server
        .terminate(std::time::Duration::from_secs(20))
        .await
        .unwrap();
    let again = Binary::start_in(dir, &unset).await;
    assert_eq!(
        std::fs::read(again.dir.join("data").join("sandbox_signing_key.pem")).unwrap(),
        before
    );

    // A damaged kept key is bad input: verify says which file, not what it holds, and exits 2.
    std::fs::write(&kept, "not a key, but long enough to be read as one").unwrap();
    let run = harness::run(&Binary::launch(again.dir.path(), &unset).arg("verify")).unwrap();
    assert_eq!(run.code(), 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("sandbox_signing_key.pem"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("long enough"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_sandbox_api_needs_the_key_it_prints() {
    let dir = Binary::scratch();
    let port = free_port().unwrap();
    let launch = Binary::launch(dir.path(), &[])
        .args(["sandbox", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--webhook-url", "http://127.0.0.1:9/v1/webhooks/pingpp"])
        .stdout_to(dir.join("stdout.log"))
        .stderr_to(dir.join("stderr.log"));
    // Owned here, so the process and then the directory go however the test ends.
    let sandbox = ServerProcess::start(
        &launch,
        loopback_base(port),
        &Readiness::prints("sk_test_").within(Duration::from_secs(30)),
    )
    .await
    .unwrap_or_else(|error| panic!("no key printed: {error}"));
    let printed = sandbox.stdout();
    let key = printed
        .split_whitespace()
        .find(|word| word.starts_with("sk_test_"))
        .unwrap_or_else(|| panic!("no key printed: {printed}"))
        .to_owned();
    let client = crate::helpers::http_client();
    let url = format!("http://127.0.0.1:{port}/sandbox/v1/charges");
    let deadline = Instant::now() + Duration::from_secs(30);
    let anonymous = loop {
        match client.post(&url).json(&serde_json::json!({})).send().await {
            Ok(response) => break response.status(),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the sandbox never answered: {error}"),
        }
    };
    assert_eq!(anonymous, StatusCode::UNAUTHORIZED, "open without its key");
    let with_key = client
        .post(&url)
        .bearer_auth(&key)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        with_key,
        StatusCode::BAD_REQUEST,
        "the key opens it (the body is incomplete)"
    );
}

/// The `ledger head` lines the server logs every `PAYLEDGER_ANCHOR_INTERVAL_SECS`, as
/// (position, hash) pairs.
fn logged_heads(stderr: &str) -> Vec<(i64, String)> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|object| object["fields"]["message"] == "ledger head")
        .filter_map(|object| {
            let fields = &object["fields"];
            Some((
                fields["position"].as_i64()?,
                fields["hash"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

async fn the_periodic_head_line_carries_the_published_head(database_url: Option<&str>) {
    const SECRET: &str = "a-secret-for-the-head-line-test-long-enough";
    let mut env = vec![
        ("PAYLEDGER_ANCHOR_INTERVAL_SECS", "1"),
        ("PAYLEDGER_LOG_FORMAT", "json"),
        ("PAYLEDGER_JWT_SECRET", SECRET),
    ];
    if let Some(url) = database_url {
        env.push(("DATABASE_URL", url));
    }
    let server = Binary::start(&env).await;
    let keys = TokenKeys::from_secret(SECRET.as_bytes());
    let now = chrono::Utc::now();
    let user = keys
        .issue("erin", Role::User, chrono::Duration::hours(1), now)
        .unwrap();
    let admin = keys
        .issue("auditor", Role::Admin, chrono::Duration::hours(1), now)
        .unwrap();
    let client = crate::helpers::http_client();
    // Something in the log, so the head is a real position with a hash.
    let order = client
        .post(format!("{}/v1/orders", server.base()))
        .bearer_auth(&user)
        .json(&json!({"plan_id": "pro-monthly", "channel": "alipay_qr"}))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), StatusCode::CREATED);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let head: Value = client
            .get(format!("{}/v1/audit/head", server.base()))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let published = (
            head["position"].as_i64().unwrap(),
            head["hash"].as_str().unwrap().to_owned(),
        );
        assert!(published.0 >= 1, "{head}");
        let logged = logged_heads(&server.stderr());
        if logged.contains(&published) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no `ledger head` line carries {published:?}; logged {logged:?}: {}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_head_line_carries_the_published_head_on_sqlite() {
    the_periodic_head_line_carries_the_published_head(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_head_line_carries_the_published_head_on_postgres() {
    let db = crate::helpers::TestDb::postgres().await;
    the_periodic_head_line_carries_the_published_head(Some(db.url.as_str())).await;
    db.finish().await;
}
