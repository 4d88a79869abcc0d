//! The hash-chained log and `payledger verify`: a clean log verifies, and each kind of
//! tampering (done as the database superuser, with the append-only triggers out of the way)
//! is reported at the position where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use harness::{Launch, ScratchDir};
use payledger::audit::verify::{ChainOnly, PageCheck};
use payledger::audit::{self, Anchor, ProblemKind, VerifyReport};
use projections::chain;
use serde_json::Value;
use sqlx::Row;

use crate::app::App;
use crate::helpers::{on_both_stores, TestDb};

pub async fn verify_with(
    db: &TestDb,
    anchor: Option<Anchor>,
    checks: &mut impl PageCheck,
) -> VerifyReport {
    audit::verify(&db.store.read, db.store.dialect(), anchor, checks, |_| {})
        .await
        .unwrap()
}

async fn verify(db: &TestDb, anchor: Option<Anchor>) -> VerifyReport {
    verify_with(db, anchor, &mut ChainOnly).await
}

/// Runs `statements` as the database superuser would, with the log's triggers out of the way
/// (PostgreSQL: disabled for the statements, then enabled again; SQLite: dropped).
pub async fn as_superuser(db: &TestDb, statements: &[(&str, Vec<Value>)]) {
    let mut connection = db.store.read.acquire().await.unwrap();
    if db.store.kind() == "postgres" {
        sqlx::query("ALTER TABLE events DISABLE TRIGGER USER")
            .execute(&mut *connection)
            .await
            .unwrap();
    } else {
        for trigger in [
            "events_append_only_update",
            "events_append_only_delete",
            "events_check_position",
        ] {
            sqlx::query(&format!("DROP TRIGGER IF EXISTS {trigger}"))
                .execute(&mut *connection)
                .await
                .unwrap();
        }
    }
    for (sql, binds) in statements {
        let mut query = sqlx::query(sql);
        for bind in binds {
            query = match bind {
                Value::Number(number) => query.bind(number.as_i64().unwrap()),
                Value::String(text) => query.bind(text.clone()),
                other => query.bind(other.to_string()),
            };
        }
        query.execute(&mut *connection).await.unwrap();
    }
    if db.store.kind() == "postgres" {
        sqlx::query("ALTER TABLE events ENABLE TRIGGER USER")
            .execute(&mut *connection)
            .await
            .unwrap();
    }
}

/// `CAST($n AS jsonb)` on PostgreSQL, `$n` on SQLite.
pub fn json_param(db: &TestDb, n: usize) -> String {
    if db.store.kind() == "postgres" {
        format!("CAST(${n} AS jsonb)")
    } else {
        format!("${n}")
    }
}

/// Two orders, the first paid through the sandbox: the log holds the first order's events,
/// the membership its payment activated, then the second order's events.
async fn two_orders(app: &App) -> (Value, Value) {
    let paid = app.create_order("alice").await;
    app.pay(&paid, "").await;
    let id = paid["id"].as_str().unwrap();
    app.poll_until(id, "alice", |order| order["status"] == "paid")
        .await;
    let pending = app.create_order("bob").await;
    (paid, pending)
}

async fn position_of(db: &TestDb, event_type: &str) -> i64 {
    sqlx::query("SELECT position FROM events WHERE event_type = $1 ORDER BY position LIMIT 1")
        .bind(event_type)
        .fetch_one(&db.store.read)
        .await
        .unwrap()
        .try_get("position")
        .unwrap()
}

async fn payload_at(db: &TestDb, position: i64) -> Value {
    let text: String =
        sqlx::query("SELECT CAST(payload AS TEXT) AS payload FROM events WHERE position = $1")
            .bind(position)
            .fetch_one(&db.store.read)
            .await
            .unwrap()
            .try_get("payload")
            .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn first_problem(report: &VerifyReport) -> (i64, ProblemKind) {
    let problem = report
        .problems
        .first()
        .unwrap_or_else(|| panic!("no problem found: {report:?}"));
    (problem.position, problem.kind.clone())
}

on_both_stores! {
    async fn a_clean_log_verifies_and_names_its_head(db: &TestDb) {
        let app = App::spawn(db).await;
        two_orders(&app).await;
        let report = verify(db, None).await;
        assert!(report.is_clean(), "{:?}", report.problems);
        let head = projections::log::head(&db.store.read).await.unwrap();
        assert!(head >= 6, "orders, payment and membership are in the log: {head}");
        assert_eq!(report.head_position, head);
        assert_eq!(report.events, u64::try_from(head).unwrap());
        let stored: Vec<u8> = sqlx::query("SELECT hash FROM events WHERE position = $1")
            .bind(head)
            .fetch_one(&db.store.read)
            .await
            .unwrap()
            .try_get("hash")
            .unwrap();
        assert_eq!(report.head_hash.map(|hash| hash.to_vec()), Some(stored));
        app.stop().await;
    }

    async fn every_link_follows_from_the_event_and_the_one_before(db: &TestDb) {
        let app = App::spawn(db).await;
        two_orders(&app).await;
        let rows = chain::read_chained(&db.store.read, 0, None, 1_000).await.unwrap();
        let mut previous = chain::GENESIS;
        for row in &rows {
            let expected = chain::link(&previous, &row.raw);
            assert_eq!(row.hash.as_deref(), Some(&expected[..]), "position {}", row.raw.position);
            previous = expected;
        }
        app.stop().await;
    }

    async fn the_log_refuses_to_change_a_stored_hash(db: &TestDb) {
        let app = App::spawn(db).await;
        two_orders(&app).await;
        let refused = sqlx::query("UPDATE events SET hash = $1 WHERE position = 1")
            .bind(vec![0_u8; 32])
            .execute(&db.store.read)
            .await;
        assert!(refused.is_err(), "a stored hash was rewritten");
        let refused = sqlx::query("UPDATE events SET hash = NULL WHERE position = 1")
            .execute(&db.store.read)
            .await;
        assert!(refused.is_err(), "a stored hash was removed");
        app.stop().await;
    }

    async fn an_edited_payload_is_reported_at_its_position(db: &TestDb) {
        let app = App::spawn(db).await;
        two_orders(&app).await;
        let position = position_of(db, "PaymentConfirmed").await;
        let mut payload = payload_at(db, position).await;
        payload["PaymentConfirmed"]["transaction_no"] = Value::from("forged-transaction");
        let sql = format!("UPDATE events SET payload = {} WHERE position = $2", json_param(db, 1));
        as_superuser(db, &[(&sql, vec![Value::from(payload.to_string()), Value::from(position)])]).await;
        let report = verify(db, None).await;
        assert_eq!(first_problem(&report), (position, ProblemKind::BrokenLink), "{:?}", report.problems);
        assert_eq!(report.problems_total, 1, "one changed event shows once: {:?}", report.problems);
        app.stop().await;
    }

    async fn a_deleted_event_is_reported_as_a_gap_where_it_was(db: &TestDb) {
        let app = App::spawn(db).await;
        two_orders(&app).await;
        // The payment and the membership it activated, as the attacker of the review did.
        let position = position_of(db, "PaymentConfirmed").await;
        assert_eq!(position_of(db, "MembershipActivated").await, position + 1);
        as_superuser(db, &[("DELETE FROM events WHERE position IN ($1, $2)",
            vec![Value::from(position), Value::from(position + 1)])]).await;
        let report = verify(db, None).await;
        assert_eq!(first_problem(&report), (position, ProblemKind::Gap { missing: 2 }), "{:?}", report.problems);
        assert!(report.problems.iter().any(|problem| problem.position == position + 2
            && problem.kind == ProblemKind::BrokenLink), "{:?}", report.problems);
        // The inbox still says the payment was applied.
        assert!(report.problems.iter().any(|problem| matches!(problem.kind, ProblemKind::AppliedWithoutEvent { .. })),
            "{:?}", report.problems);
        app.stop().await;
    }

    async fn a_swapped_pair_is_reported_at_the_first_of_the_two(db: &TestDb) {
        let app = App::spawn(db).await;
        two_orders(&app).await;
        // alice's membership, then bob's OrderCreated: two streams, so only the chain can
        // tell their order changed.
        let first = position_of(db, "MembershipActivated").await;
        let second = first + 1;
        as_superuser(db, &[
            ("UPDATE events SET position = -1 WHERE position = $1", vec![Value::from(first)]),
            ("UPDATE events SET position = $1 WHERE position = $2", vec![Value::from(first), Value::from(second)]),
            ("UPDATE events SET position = $1 WHERE position = -1", vec![Value::from(second)]),
        ]).await;
        let report = verify(db, None).await;
        assert_eq!(first_problem(&report), (first, ProblemKind::BrokenLink), "{:?}", report.problems);
        assert!(report.problems.iter().any(|problem| problem.position == second
            && problem.kind == ProblemKind::BrokenLink), "{:?}", report.problems);
        app.stop().await;
    }

    async fn events_swapped_within_a_stream_break_its_sequence_too(db: &TestDb) {
        let app = App::spawn(db).await;
        two_orders(&app).await;
        let first = position_of(db, "OrderCreated").await;
        as_superuser(db, &[
            ("UPDATE events SET position = -1 WHERE position = $1", vec![Value::from(first)]),
            ("UPDATE events SET position = $1 WHERE position = $2", vec![Value::from(first), Value::from(first + 1)]),
            ("UPDATE events SET position = $1 WHERE position = -1", vec![Value::from(first + 1)]),
        ]).await;
        let report = verify(db, None).await;
        assert!(report.problems.iter().any(|problem| problem.position == first
            && matches!(problem.kind, ProblemKind::Sequence { .. })), "{:?}", report.problems);
        app.stop().await;
    }

    async fn a_log_rewritten_with_a_recomputed_chain_fails_its_anchor(db: &TestDb) {
        let app = App::spawn(db).await;
        two_orders(&app).await;
        let clean = verify(db, None).await;
        let anchor = Anchor { position: clean.head_position, hash: clean.head_hash.unwrap() };
        assert!(verify(db, Some(anchor)).await.is_clean());

        // Rewrite the payment and link everything from there again, as an attacker who knows
        // the algorithm would: the chain alone then looks intact.
        let position = position_of(db, "PaymentConfirmed").await;
        let mut payload = payload_at(db, position).await;
        payload["PaymentConfirmed"]["transaction_no"] = Value::from("rewritten");
        let sql = format!("UPDATE events SET payload = {} WHERE position = $2", json_param(db, 1));
        as_superuser(db, &[
            (&sql, vec![Value::from(payload.to_string()), Value::from(position)]),
            ("UPDATE events SET hash = NULL WHERE position >= $1", vec![Value::from(position)]),
        ]).await;
        payledger::store::link_chain(&db.store).await.unwrap();
        assert!(verify(db, None).await.is_clean(), "the rewritten chain is self-consistent");
        let report = verify(db, Some(anchor)).await;
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(report.problems[0].position, anchor.position);
        assert!(matches!(report.problems[0].kind, ProblemKind::Anchor { .. }));

        // An anchor beyond the log (events removed from the top) fails too.
        let beyond = Anchor { position: anchor.position + 5, hash: anchor.hash };
        assert!(!verify(db, Some(beyond)).await.is_clean());
        app.stop().await;
    }

    async fn the_first_writer_links_rows_stored_without_a_hash(db: &TestDb) {
        let app = App::spawn(db).await;
        let first = app.create_order("alice").await;
        // As if these rows had been written before the chain existed.
        as_superuser(db, &[("UPDATE events SET hash = NULL", vec![])]).await;
        assert!(!verify(db, None).await.is_clean());
        let second = app.create_order("bob").await;
        assert_ne!(first["id"], second["id"]);
        let report = verify(db, None).await;
        assert!(report.is_clean(), "{:?}", report.problems);
        app.stop().await;
    }
}

const BINARY: &str = env!("CARGO_BIN_EXE_payledger");

/// `payledger verify` against `db`, returning its exit status and output.
pub fn run_verify(db: &TestDb, args: &[&str]) -> (i32, String, String) {
    run_verify_with(db, args, &[])
}

/// `payledger verify` against `db` with `env` set, returning its exit status and output.
pub fn run_verify_with(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = ScratchDir::new("verify").unwrap();
    let launch = Launch::new(BINARY)
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", db.url.as_str())
        .env("PAYLEDGER_DATA_DIR", dir.join("data"))
        .envs(env.iter().copied())
        .arg("verify")
        .args(args);
    let run = harness::run(&launch).unwrap();
    (run.code(), run.stdout, run.stderr)
}

on_both_stores! {
    async fn the_verify_command_exits_0_1_or_2(db: &TestDb) {
        let app = App::spawn(db).await;
        two_orders(&app).await;
        // Without the gateway's key the payment's evidence cannot be verified again.
        let (code, stdout, stderr) = run_verify(db, &[]);
        assert_eq!(code, 1, "{stdout}{stderr}");
        assert!(stdout.contains("no configured gateway key"), "{stdout}");
        let key = std::env::temp_dir().join(format!("payledger-key-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&key, gateways::pingpp::keys::public_key_to_pem(&crate::app::sandbox_key().to_public_key()).unwrap()).unwrap();
        let key = key.display().to_string();
        let (code, stdout, stderr) = run_verify(db, &["--gateway-key", &key]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("evidence: 1 webhook(s) and 0 signed gateway answer(s) verified again"), "{stdout}");
        let head = projections::log::head(&db.store.read).await.unwrap();
        assert!(stdout.contains(&format!("head: position {head} hash ")), "{stdout}");

        let (code, stdout, _) = run_verify(db, &["--anchor", "/nonexistent/anchor.json"]);
        assert_eq!(code, 2, "{stdout}");

        let position = position_of(db, "ChargeRequested").await;
        as_superuser(db, &[("DELETE FROM events WHERE position = $1", vec![Value::from(position)])]).await;
        let (code, stdout, stderr) = run_verify(db, &["--gateway-key", &key]);
        assert_eq!(code, 1, "{stdout}{stderr}");
        assert!(stdout.contains(&format!("position {position}: gap")), "{stdout}");
        let _ = std::fs::remove_file(&key);
        app.stop().await;
    }

    async fn the_signed_head_anchors_the_log_against_a_wholesale_rewrite(db: &TestDb) {
        let app = App::spawn(db).await;
        two_orders(&app).await;
        let (status, _) = app.get("/v1/audit/head", "alice").await;
        assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
        let (status, head) = app.get_as_admin("/v1/audit/head").await;
        assert_eq!(status, reqwest::StatusCode::OK, "{head}");
        let saved: payledger::audit::anchor::SignedHead = serde_json::from_value(head.clone()).unwrap();
        let public = crate::app::audit_key().to_public_key();
        assert!(saved.is_signed_by(&public));
        assert_eq!(saved.position, projections::log::head(&db.store.read).await.unwrap());
        let mut forged = saved.clone();
        forged.position -= 1;
        assert!(!forged.is_signed_by(&public), "the signature covers the position");

        let dir = std::env::temp_dir().join(format!("payledger-anchor-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let anchor = dir.join("head.json");
        std::fs::write(&anchor, head.to_string()).unwrap();
        let public_path = dir.join("audit.pem");
        std::fs::write(&public_path, gateways::pingpp::keys::public_key_to_pem(&public).unwrap()).unwrap();
        let gateway_key = dir.join("gateway.pem");
        std::fs::write(&gateway_key, gateways::pingpp::keys::public_key_to_pem(&crate::app::sandbox_key().to_public_key()).unwrap()).unwrap();
        let args = |anchor: &std::path::Path| vec![
            "--anchor".to_owned(), anchor.display().to_string(),
            "--audit-key".to_owned(), public_path.display().to_string(),
            "--gateway-key".to_owned(), gateway_key.display().to_string(),
        ];
        let run = |anchor: &std::path::Path| {
            let args = args(anchor);
            run_verify(db, &args.iter().map(String::as_str).collect::<Vec<_>>())
        };
        let (code, stdout, stderr) = run(&anchor);
        assert_eq!(code, 0, "{stdout}{stderr}");

        // A head whose signature does not hold is bad input.
        let tampered = dir.join("tampered.json");
        std::fs::write(&tampered, serde_json::to_string(&forged).unwrap()).unwrap();
        let (code, stdout, stderr) = run(&tampered);
        assert_eq!(code, 2, "{stdout}{stderr}");

        // Rewrite bob's order and link everything again: only the anchor tells.
        let position = position_of(db, "OrderCreated").await;
        let mut payload = payload_at(db, position).await;
        payload["OrderCreated"]["user_id"] = Value::from("mallory");
        let sql = format!("UPDATE events SET payload = {} WHERE position = $2", json_param(db, 1));
        as_superuser(db, &[
            (&sql, vec![Value::from(payload.to_string()), Value::from(position)]),
            ("UPDATE events SET hash = NULL WHERE position >= $1", vec![Value::from(position)]),
        ]).await;
        payledger::store::link_chain(&db.store).await.unwrap();
        let (code, stdout, stderr) = run(&anchor);
        assert_eq!(code, 1, "{stdout}{stderr}");
        assert!(stdout.contains(&format!("position {}: anchor", saved.position)), "{stdout}");
        let _ = std::fs::remove_dir_all(&dir);
        app.stop().await;
    }
}
