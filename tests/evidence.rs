//! Gateway evidence: every money event from a gateway is kept with the exact bytes it rests
//! on, and `payledger verify` verifies them again and compares what they say.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aggregates::{ChargeId, Currency, GatewayEventId, Money, OrderEvent};
use gateways::wechatpay::resource::ApiV3Key;
use payledger::audit::evidence::EvidenceCheck;
use payledger::audit::{ProblemKind, VerifyReport};
use payledger::process::reconciler::{self, ReconcilerSettings};
use projections::chain;
use projections::log::RawEvent;
use serde_json::{json, Value};
use sqlx::Row;

use crate::app::{sandbox_key, App};
use crate::chain::{as_superuser, json_param, run_verify_with, verify_with};
use crate::helpers::{on_both_stores, TestDb};

/// The report lists exactly one problem, at `position`, and its message says `says`.
fn assert_one_problem(report: &VerifyReport, position: i64, says: &str) {
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].position, position);
    let problem = report.problems[0].to_string();
    assert!(problem.contains(says), "{problem}");
}

const VECTOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/gateways/tests/fixtures/pingpp"
);

fn vector_key() -> rsa::RsaPublicKey {
    gateways::keys::public_key_from_file(std::path::Path::new(&format!("{VECTOR}/public_key.pem")))
        .unwrap()
}

fn sandbox_check() -> EvidenceCheck {
    EvidenceCheck::new(vec![sandbox_key().to_public_key()])
}

/// Appends one row after the head, linked as the writer would (what someone who can write
/// the table and knows the algorithm can do).
async fn append_linked(
    db: &TestDb,
    aggregate_id: &str,
    sequence: i64,
    event: &OrderEvent,
    gateway_event_id: &str,
) -> i64 {
    let mut connection = db.store.read.acquire().await.unwrap();
    let (head, hash) = chain::head_in(&mut connection).await.unwrap();
    let raw = RawEvent {
        position: head + 1,
        aggregate_type: "order".to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        sequence,
        event_type: event.event_type_name().to_owned(),
        event_version: "1.1".to_owned(),
        payload: serde_json::to_value(event).unwrap(),
        metadata: json!({"request_id": "forged", "actor": "gateway", "source": "webhook",
                         "gateway_event_id": gateway_event_id, "recorded_at": "2026-11-30T12:00:00.000000Z"}),
        recorded_at: String::new(),
    };
    let link = chain::link(&chain::as_hash(&hash.unwrap()).unwrap(), &raw);
    let sql = format!(
        "INSERT INTO events (position, aggregate_type, aggregate_id, sequence, event_type, \
         event_version, payload, metadata, hash) VALUES ($1, $2, $3, $4, $5, $6, {}, {}, $9)",
        json_param(db, 7),
        json_param(db, 8)
    );
    sqlx::query(&sql)
        .bind(raw.position)
        .bind(raw.aggregate_type.clone())
        .bind(raw.aggregate_id.clone())
        .bind(raw.sequence)
        .bind(raw.event_type.clone())
        .bind(raw.event_version.clone())
        .bind(raw.payload.to_string())
        .bind(raw.metadata.to_string())
        .bind(link.to_vec())
        .execute(&mut *connection)
        .await
        .unwrap();
    raw.position
}

fn confirmed(charge_id: &str, amount_minor: i64, event_id: &str) -> OrderEvent {
    OrderEvent::PaymentConfirmed {
        charge_id: ChargeId::parse(charge_id).unwrap(),
        gateway_event_id: Some(GatewayEventId::parse(event_id).unwrap()),
        amount: Money::new(amount_minor, Currency::Cny).unwrap(),
        transaction_no: None,
        paid_at: chrono::Utc::now(),
        recorded_at: chrono::Utc::now(),
        membership: None,
    }
}

async fn keep(db: &TestDb, body: &[u8], signature: &str, fingerprint: &str, position: i64) {
    sqlx::query(
        "INSERT INTO gateway_evidence (provider, event_id, protocol, body, signature_headers, \
         key_fingerprint, first_position, last_position, received_at) \
         VALUES ('pingpp', 'evt_eYa58Wd44Glerl8AgfYfd1sL', 'pingpp', $1, $2, $3, $4, $4, 'now')",
    )
    .bind(body.to_vec())
    .bind(json!([["x-pingplusplus-signature", signature]]).to_string())
    .bind(fingerprint.to_owned())
    .bind(position)
    .execute(&db.store.read)
    .await
    .unwrap();
}

on_both_stores! {
    async fn a_paid_order_keeps_the_exact_webhook_and_it_verifies_again(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("alice").await;
        app.pay(&order, "").await;
        let id = order["id"].as_str().unwrap();
        app.poll_until(id, "alice", |order| order["status"] == "paid").await;

        let row = sqlx::query("SELECT protocol, body, signature_headers, key_fingerprint, first_position, \
                               last_position FROM gateway_evidence")
            .fetch_one(&db.store.read)
            .await
            .unwrap();
        let body: Vec<u8> = row.try_get("body").unwrap();
        let sent: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent["type"], "charge.succeeded");
        assert_eq!(row.try_get::<String, _>("protocol").unwrap(), "pingpp");
        assert_eq!(
            row.try_get::<Option<String>, _>("key_fingerprint").unwrap(),
            Some(gateways::keys::fingerprint(&sandbox_key().to_public_key()).unwrap())
        );
        let headers: String = row.try_get("signature_headers").unwrap();
        assert!(headers.contains("x-pingplusplus-signature"), "{headers}");
        let paid_at: i64 = sqlx::query("SELECT position FROM events WHERE event_type = 'PaymentConfirmed'")
            .fetch_one(&db.store.read).await.unwrap().try_get("position").unwrap();
        assert_eq!(row.try_get::<i64, _>("first_position").unwrap(), paid_at);
        assert_eq!(row.try_get::<i64, _>("last_position").unwrap(), paid_at + 1, "and the membership");

        let mut check = sandbox_check();
        let report = verify_with(db, None, &mut check).await;
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!(check.reverified, 1);

        // Without the gateway's key the evidence cannot vouch for anything.
        let report = verify_with(db, None, &mut EvidenceCheck::new(Vec::new())).await;
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(report.problems[0].position, paid_at);
        assert!(matches!(report.problems[0].kind, ProblemKind::BadEvidence { .. }));

        // Evidence is append-only.
        assert!(sqlx::query("UPDATE gateway_evidence SET body = $1").bind(b"{}".to_vec())
            .execute(&db.store.read).await.is_err());
        assert!(sqlx::query("DELETE FROM gateway_evidence").execute(&db.store.read).await.is_err());
        app.stop().await;
    }

    async fn a_hand_inserted_payment_is_reported_as_lacking_evidence(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("alice").await;
        let id = order["id"].as_str().unwrap();
        let charge = app.charge_of(id).await;
        // The review's forgery: one PaymentConfirmed for a pending order, chain and all.
        let forged = append_linked(db, id, 3, &confirmed(&charge, order["amount"].as_i64().unwrap(), "evt_forged0000000001"), "evt_forged0000000001").await;
        let mut check = sandbox_check();
        let report = verify_with(db, None, &mut check).await;
        assert_eq!(report.problems.len(), 1, "the chain holds, only evidence is missing: {:?}", report.problems);
        assert_eq!(report.problems[0].position, forged);
        assert_eq!(report.problems[0].kind, ProblemKind::MissingEvidence { event_type: "PaymentConfirmed".to_owned() });
        app.stop().await;
    }

    async fn a_genuine_pingpp_webhook_verifies_again_and_must_name_the_same_payment(db: &TestDb) {
        let body = std::fs::read(format!("{VECTOR}/body.raw")).unwrap();
        let tampered = std::fs::read(format!("{VECTOR}/body_tampered.raw")).unwrap();
        let signature = std::fs::read_to_string(format!("{VECTOR}/signature.b64")).unwrap();
        let fingerprint = gateways::keys::fingerprint(&vector_key()).unwrap();
        // An order of ours with the vector's charge and amount: its order_no is not ours, so
        // the evidence must say so even though its signature is genuine.
        let order_id = uuid::Uuid::new_v4().to_string();
        let position = append_linked(db, &order_id, 1, &confirmed("ch_bq9IHKnn6GnLzsS0swOujr4x", 100, "evt_eYa58Wd44Glerl8AgfYfd1sL"), "evt_eYa58Wd44Glerl8AgfYfd1sL").await;
        keep(db, &body, signature.trim(), &fingerprint, position).await;
        let mut check = EvidenceCheck::new(vec![vector_key()]);
        let report = verify_with(db, None, &mut check).await;
        assert_eq!(check.reverified, 1, "{:?}", report.problems);
        let evidence: Vec<_> = report.problems.iter().filter(|problem| matches!(problem.kind, ProblemKind::BadEvidence { .. })).collect();
        assert_eq!(evidence.len(), 1, "{:?}", report.problems);
        assert_eq!(evidence[0].position, position);
        assert!(evidence[0].to_string().contains("order_no 2015d019f7cf6c0d"), "{}", evidence[0]);

        // The same signature over a body with one byte of the amount changed does not verify.
        let second = append_linked(db, &order_id, 2, &confirmed("ch_bq9IHKnn6GnLzsS0swOujr4x", 100, "evt_eYa58Wd44Glerl8AgfYfd1sL"), "evt_eYa58Wd44Glerl8AgfYfd1sL").await;
        keep(db, &tampered, signature.trim(), &fingerprint, second).await;
        let mut check = EvidenceCheck::new(vec![vector_key()]);
        let report = verify_with(db, None, &mut check).await;
        let at_second: Vec<_> = report.problems.iter().filter(|problem| problem.position == second).collect();
        assert_eq!(at_second.len(), 1, "{:?}", report.problems);
        assert!(at_second[0].to_string().contains("does not verify again"), "{}", at_second[0]);
    }

    async fn a_payment_whose_evidence_names_another_amount_is_reported(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("alice").await;
        app.pay(&order, "").await;
        let id = order["id"].as_str().unwrap();
        app.poll_until(id, "alice", |order| order["status"] == "paid").await;
        let position: i64 = sqlx::query("SELECT position FROM events WHERE event_type = 'PaymentConfirmed'")
            .fetch_one(&db.store.read).await.unwrap().try_get("position").unwrap();
        let text: String = sqlx::query("SELECT CAST(payload AS TEXT) AS p FROM events WHERE position = $1")
            .bind(position).fetch_one(&db.store.read).await.unwrap().try_get("p").unwrap();
        let mut payload: Value = serde_json::from_str(&text).unwrap();
        payload["PaymentConfirmed"]["amount"]["amount_minor"] = Value::from(1);
        // Edited and relinked from there, so only the evidence can tell.
        let sql = format!("UPDATE events SET payload = {} WHERE position = $2", json_param(db, 1));
        as_superuser(db, &[
            (&sql, vec![Value::from(payload.to_string()), Value::from(position)]),
            ("UPDATE events SET hash = NULL WHERE position >= $1", vec![Value::from(position)]),
        ]).await;
        payledger::store::link_chain(&db.store).await.unwrap();
        let report = verify_with(db, None, &mut sandbox_check()).await;
        assert_one_problem(&report, position, "the gateway says");
        app.stop().await;
    }

    async fn alipay_evidence_verifies_again_with_the_key_that_signed_it(db: &TestDb) {
        let app = App::spawn_sandbox(db, |setup| {
            setup.sandbox_protocols.insert(aggregates::Channel::AlipayQr, gateways::routing::ProviderName::Alipay);
        }).await;
        let order = app.create_order("alice").await;
        let sandbox_charge = order["qr_code"].as_str().unwrap().rsplit('/').next().unwrap();
        app.sandbox.as_ref().unwrap().pay(sandbox_charge, &sandbox::PayOptions::default()).unwrap();
        let id = order["id"].as_str().unwrap();
        app.poll_until(id, "alice", |order| order["status"] == "paid").await;
        let protocol: String = sqlx::query("SELECT protocol FROM gateway_evidence")
            .fetch_one(&db.store.read).await.unwrap().try_get("protocol").unwrap();
        assert_eq!(protocol, "alipay");
        let mut check = sandbox_check();
        let report = verify_with(db, None, &mut check).await;
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!((check.reverified, check.not_reverified), (1, 0));
        app.stop().await;
    }

    async fn wechatpay_evidence_verifies_again_and_opens_with_the_apiv3_key(db: &TestDb) {
        let api_v3_key = ApiV3Key::parse("a-32-byte-apiv3-key-for-testing!").unwrap();
        let sealed_with = api_v3_key.clone();
        let app = App::spawn_sandbox(db, |setup| {
            setup.sandbox_protocols.insert(aggregates::Channel::WxPubQr, gateways::routing::ProviderName::WechatPay);
            setup.sandbox_wechatpay_api_v3_key = Some(sealed_with);
        }).await;
        let token = app.token("alice", payledger::auth::Role::User);
        let (_, order) = app.post("/v1/orders", &token, json!({"plan_id": "pro-monthly", "channel": "wx_pub_qr"})).await;
        let sandbox_charge = order["qr_code"].as_str().unwrap().rsplit('/').next().unwrap();
        app.sandbox.as_ref().unwrap().pay(sandbox_charge, &sandbox::PayOptions::default()).unwrap();
        let id = order["id"].as_str().unwrap();
        app.poll_until(id, "alice", |order| order["status"] == "paid").await;
        let row = sqlx::query("SELECT protocol, first_position FROM gateway_evidence")
            .fetch_one(&db.store.read).await.unwrap();
        assert_eq!(row.try_get::<String, _>("protocol").unwrap(), "wechatpay");
        let position: i64 = row.try_get("first_position").unwrap();

        // With the APIv3 key the callback is opened and its order, charge and amount compared.
        let mut check = sandbox_check().with_wechatpay_api_v3_key(api_v3_key.clone());
        let report = verify_with(db, None, &mut check).await;
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!((check.reverified, check.amounts_not_compared, check.not_reverified), (1, 0, 0));

        // Without it the signature is still checked, and the uncompared amount is counted.
        let mut check = sandbox_check();
        let report = verify_with(db, None, &mut check).await;
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!((check.reverified, check.amounts_not_compared), (1, 1));

        // Another APIv3 key cannot open it.
        let mut check = sandbox_check().with_wechatpay_api_v3_key(ApiV3Key::parse("another-32-byte-key-for-testing!").unwrap());
        let report = verify_with(db, None, &mut check).await;
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(report.problems[0].position, position);

        // One byte of the kept body changed: reported where the payment is.
        tamper_evidence_body(db, "wechatpay").await;
        let mut check = sandbox_check().with_wechatpay_api_v3_key(api_v3_key);
        let report = verify_with(db, None, &mut check).await;
        assert_one_problem(&report, position, "does not verify again");
        app.stop().await;
    }

    async fn the_verify_command_says_when_it_could_not_compare_wechatpay_amounts(db: &TestDb) {
        const API_V3_KEY: &str = "a-32-byte-apiv3-key-for-testing!";
        let app = App::spawn_sandbox(db, |setup| {
            setup.sandbox_protocols.insert(aggregates::Channel::WxPubQr, gateways::routing::ProviderName::WechatPay);
            setup.sandbox_wechatpay_api_v3_key = Some(ApiV3Key::parse(API_V3_KEY).unwrap());
        }).await;
        let token = app.token("alice", payledger::auth::Role::User);
        let (_, order) = app.post("/v1/orders", &token, json!({"plan_id": "pro-monthly", "channel": "wx_pub_qr"})).await;
        let sandbox_charge = order["qr_code"].as_str().unwrap().rsplit('/').next().unwrap();
        app.sandbox.as_ref().unwrap().pay(sandbox_charge, &sandbox::PayOptions::default()).unwrap();
        let id = order["id"].as_str().unwrap();
        app.poll_until(id, "alice", |order| order["status"] == "paid").await;
        let key_path = std::env::temp_dir().join(format!("payledger-platform-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&key_path, gateways::pingpp::keys::public_key_to_pem(&sandbox_key().to_public_key()).unwrap()).unwrap();
        let key = key_path.display().to_string();

        let (code, stdout, stderr) = run_verify_with(db, &["--gateway-key", &key], &[]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("1 WeChat Pay webhook(s) verified again but their order, charge and amount NOT compared"), "{stdout}");
        assert!(stdout.contains("WECHATPAY_APIV3_KEY"), "{stdout}");

        let (code, stdout, stderr) = run_verify_with(db, &["--gateway-key", &key], &[("WECHATPAY_APIV3_KEY", API_V3_KEY)]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(!stdout.contains("NOT compared"), "{stdout}");
        assert!(stdout.contains("evidence: 1 webhook(s)"), "{stdout}");

        // Another key cannot open the callback: the payment is reported where it is.
        let (code, stdout, _) = run_verify_with(db, &["--gateway-key", &key], &[("WECHATPAY_APIV3_KEY", "another-32-byte-key-for-testing!")]);
        assert_eq!(code, 1, "{stdout}");
        assert!(stdout.contains("PROBLEM position"), "{stdout}");

        // A key that cannot be one is refused as bad input, without echoing it.
        let (code, stdout, stderr) = run_verify_with(db, &["--gateway-key", &key], &[("WECHATPAY_APIV3_KEY", "short-secret")]);
        assert_eq!(code, 2, "{stdout}{stderr}");
        assert!(stderr.contains("WECHATPAY_APIV3_KEY") && !stderr.contains("short-secret"), "{stderr}");
        let _ = std::fs::remove_file(&key_path);
        app.stop().await;
    }

    async fn a_reconciled_alipay_payment_rests_on_alipays_signed_answer(db: &TestDb) {
        let app = reconciled_purchase_and_refund(db, aggregates::Channel::AlipayQr, gateways::routing::ProviderName::Alipay).await;
        let sandbox_fingerprint = Some(gateways::keys::fingerprint(&sandbox_key().to_public_key()).unwrap());
        let (protocol, fingerprint, paid_at) = evidence_of(db, "PaymentConfirmed").await;
        assert_eq!((protocol.as_str(), &fingerprint), ("alipay.trade.query", &sandbox_fingerprint));
        // Alipay finishes a refund in a later answer: the reconciler's lookup settled it.
        let (protocol, fingerprint, _) = evidence_of(db, "Refunded").await;
        assert_eq!((protocol.as_str(), &fingerprint), ("alipay.trade.fastpay.refund.query", &sandbox_fingerprint));
        let mut check = sandbox_check();
        let report = verify_with(db, None, &mut check).await;
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!((check.answers_reverified, check.unsigned), (2, 0));

        // Without Alipay's key a signed answer cannot vouch for anything.
        let report = verify_with(db, None, &mut EvidenceCheck::new(Vec::new())).await;
        assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
        assert_eq!(report.problems[0].position, paid_at);
        app.stop().await;
    }

    async fn a_reconciled_wechatpay_payment_rests_on_the_signed_answer_and_tampering_shows(db: &TestDb) {
        let app = reconciled_purchase_and_refund(db, aggregates::Channel::WxPubQr, gateways::routing::ProviderName::WechatPay).await;
        let (protocol, fingerprint, paid_at) = evidence_of(db, "PaymentConfirmed").await;
        assert_eq!(protocol, "wechatpay.transaction");
        assert_eq!(fingerprint, Some(gateways::keys::fingerprint(&sandbox_key().to_public_key()).unwrap()));
        let mut check = sandbox_check();
        let report = verify_with(db, None, &mut check).await;
        assert!(report.is_clean(), "{:?}", report.problems);
        assert!(check.answers_reverified >= 1, "{}", check.answers_reverified);
        assert_eq!(check.unsigned, 0);

        let answer: Vec<u8> = sqlx::query("SELECT body FROM gateway_evidence WHERE protocol = 'wechatpay.transaction'")
            .fetch_one(&db.store.read).await.unwrap().try_get("body").unwrap();
        let transaction: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(transaction["trade_state"], "SUCCESS", "the answer as WeChat Pay sent it");
        tamper_evidence_body(db, "wechatpay.transaction").await;
        let report = verify_with(db, None, &mut sandbox_check()).await;
        let at_payment: Vec<_> = report.problems.iter().filter(|problem| problem.position == paid_at).collect();
        assert_eq!(at_payment.len(), 1, "{:?}", report.problems);
        assert!(at_payment[0].to_string().contains("does not verify or read again"), "{}", at_payment[0]);
        app.stop().await;
    }

    async fn a_reconciled_pingpp_payment_keeps_the_unsigned_answer_and_is_counted(db: &TestDb) {
        let app = App::spawn(db).await;
        let order = app.create_order("rosa").await;
        app.pay(&order, "drop=1").await;
        let report = reconciler::run_once(&app.state, &AT_ONCE).await.unwrap();
        assert_eq!(report.confirmed, 1, "{report}");
        let (protocol, fingerprint, paid_at) = evidence_of(db, "PaymentConfirmed").await;
        assert_eq!((protocol.as_str(), fingerprint), ("pingpp.charge", None));
        let mut check = sandbox_check();
        let report = verify_with(db, None, &mut check).await;
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!((check.unsigned, check.answers_reverified, check.reverified), (1, 0, 0));

        // Unsigned, but still read: an answer naming another amount is reported.
        tamper_evidence_amount(db, "pingpp.charge").await;
        let report = verify_with(db, None, &mut sandbox_check()).await;
        assert_one_problem(&report, paid_at, "the gateway says");
        app.stop().await;
    }

    async fn an_alipay_refund_finished_in_its_answer_rests_on_that_signed_answer(db: &TestDb) {
        let app = purchase_and_refund(db, aggregates::Channel::AlipayQr, gateways::routing::ProviderName::Alipay, Refunds::FinishedInAnswer).await;
        let sandbox_fingerprint = Some(gateways::keys::fingerprint(&sandbox_key().to_public_key()).unwrap());
        let (protocol, fingerprint, refunded_at) = evidence_of(db, "Refunded").await;
        assert_eq!((protocol.as_str(), &fingerprint), ("alipay.trade.refund", &sandbox_fingerprint));
        let body = evidence_body(db, "alipay.trade.refund").await;
        assert!(body.starts_with(br#"{"alipay_trade_refund_response":"#), "{}", String::from_utf8_lossy(&body));
        let mut check = sandbox_check();
        let report = verify_with(db, None, &mut check).await;
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!((check.answers_reverified, check.unsigned), (2, 0));
        verify_command_is_clean(db, "2 signed gateway answer(s)");

        // Signed again by Alipay's key, an answer whose total refunded on the trade is less
        // than the refund is reported: the trade's total includes every refund, never less.
        let text = serde_json::to_string(&{
            let raw: Value = serde_json::from_slice(&body).unwrap();
            let mut response = raw["alipay_trade_refund_response"].clone();
            response["refund_fee"] = Value::from("5.00");
            response
        }).unwrap();
        let sign = gateways::signature::sign(sandbox_key(), text.as_bytes());
        let resigned = format!(r#"{{"alipay_trade_refund_response":{text},"sign":"{sign}"}}"#);
        replace_evidence_body(db, "alipay.trade.refund", resigned.into_bytes()).await;
        let report = verify_with(db, None, &mut sandbox_check()).await;
        assert_one_problem(&report, refunded_at, "refunded on the trade in all");

        // One byte of the kept answer changed: it no longer verifies.
        replace_evidence_body(db, "alipay.trade.refund", body).await;
        tamper_evidence_body(db, "alipay.trade.refund").await;
        let report = verify_with(db, None, &mut sandbox_check()).await;
        assert_one_problem(&report, refunded_at, "does not verify or read again");
        app.stop().await;
    }

    async fn a_wechatpay_refund_finished_in_its_answer_rests_on_that_signed_answer(db: &TestDb) {
        let app = purchase_and_refund(db, aggregates::Channel::WxPubQr, gateways::routing::ProviderName::WechatPay, Refunds::FinishedInAnswer).await;
        let (protocol, fingerprint, refunded_at) = evidence_of(db, "Refunded").await;
        assert_eq!(protocol, "wechatpay.refund");
        assert_eq!(fingerprint, Some(gateways::keys::fingerprint(&sandbox_key().to_public_key()).unwrap()));
        let refund: Value = serde_json::from_slice(&evidence_body(db, "wechatpay.refund").await).unwrap();
        assert_eq!(refund["status"], "SUCCESS", "the answer as WeChat Pay sent it");
        let mut check = sandbox_check();
        let report = verify_with(db, None, &mut check).await;
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!((check.answers_reverified, check.unsigned), (2, 0));
        verify_command_is_clean(db, "2 signed gateway answer(s)");

        tamper_evidence_body(db, "wechatpay.refund").await;
        let report = verify_with(db, None, &mut sandbox_check()).await;
        assert_one_problem(&report, refunded_at, "does not verify or read again");
        app.stop().await;
    }

    async fn a_pingpp_refund_finished_in_its_answer_keeps_it_unsigned_and_is_counted(db: &TestDb) {
        let app = purchase_and_refund(db, aggregates::Channel::AlipayQr, gateways::routing::ProviderName::Pingpp, Refunds::FinishedInAnswer).await;
        let (protocol, fingerprint, refunded_at) = evidence_of(db, "Refunded").await;
        assert_eq!((protocol.as_str(), fingerprint), ("pingpp.refund", None));
        let mut check = sandbox_check();
        let report = verify_with(db, None, &mut check).await;
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!((check.unsigned, check.answers_reverified), (2, 0));

        // Unsigned, but still read: an answer naming another amount is reported.
        tamper_evidence_amount(db, "pingpp.refund").await;
        let report = verify_with(db, None, &mut sandbox_check()).await;
        assert_one_problem(&report, refunded_at, "the gateway says");
        app.stop().await;
    }

    async fn a_summary_kept_by_an_earlier_version_still_verifies_unsigned(db: &TestDb) {
        let app = purchase_and_refund(db, aggregates::Channel::AlipayQr, gateways::routing::ProviderName::Pingpp, Refunds::FinishedInAnswer).await;
        let (_, _, refunded_at) = evidence_of(db, "Refunded").await;
        let refund: Value = serde_json::from_slice(&evidence_body(db, "pingpp.refund").await).unwrap();
        // The row as earlier versions wrote it: the ledger's own summary of the answer.
        let summary = |amount: i64| json!({
            "object": "refund",
            "source": "api",
            "id": refund["id"],
            "charge": refund["charge"],
            "refund_id": refund["metadata"]["refund_id"],
            "amount": amount,
            "status": "succeeded",
            "failure_code": null,
        });
        as_summary(db, serde_json::to_vec(&summary(1000)).unwrap()).await;
        let mut check = sandbox_check();
        let report = verify_with(db, None, &mut check).await;
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!((check.unsigned, check.answers_reverified), (2, 0));

        replace_evidence_body(db, "summary", serde_json::to_vec(&summary(1)).unwrap()).await;
        let report = verify_with(db, None, &mut sandbox_check()).await;
        assert_one_problem(&report, refunded_at, "the kept summary names another refund or amount");
        app.stop().await;
    }
}

/// Turns the kept Ping++ refund answer into a `summary` row with `body`, as earlier versions
/// wrote for a refund finished in the answer to its request.
async fn as_summary(db: &TestDb, body: Vec<u8>) {
    replace_evidence_body(db, "pingpp.refund", body).await;
    let mut connection = db.store.read.acquire().await.unwrap();
    if db.store.kind() == "postgres" {
        sqlx::query("ALTER TABLE gateway_evidence DISABLE TRIGGER USER")
            .execute(&mut *connection)
            .await
            .unwrap();
    }
    sqlx::query(
        "UPDATE gateway_evidence SET protocol = 'summary' WHERE protocol = 'pingpp.refund'",
    )
    .execute(&mut *connection)
    .await
    .unwrap();
    if db.store.kind() == "postgres" {
        sqlx::query("ALTER TABLE gateway_evidence ENABLE TRIGGER USER")
            .execute(&mut *connection)
            .await
            .unwrap();
    }
}

/// Runs the verify command with the sandbox's key, which signs as every gateway: it must exit
/// 0 and report `verified`.
fn verify_command_is_clean(db: &TestDb, verified: &str) {
    let key_path =
        std::env::temp_dir().join(format!("payledger-gateway-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(
        &key_path,
        gateways::pingpp::keys::public_key_to_pem(&sandbox_key().to_public_key()).unwrap(),
    )
    .unwrap();
    let key = key_path.display().to_string();
    let (code, stdout, stderr) = run_verify_with(db, &["--gateway-key", &key], &[]);
    let _ = std::fs::remove_file(&key_path);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(verified), "{stdout}");
}

/// The first kept body of `protocol`.
async fn evidence_body(db: &TestDb, protocol: &str) -> Vec<u8> {
    sqlx::query("SELECT body FROM gateway_evidence WHERE protocol = $1 ORDER BY id LIMIT 1")
        .bind(protocol)
        .fetch_one(&db.store.read)
        .await
        .unwrap()
        .try_get("body")
        .unwrap()
}

/// Rewrites the amount in the first kept Ping++ answer of `protocol`, as the owner of the
/// tables could.
async fn tamper_evidence_amount(db: &TestDb, protocol: &str) {
    let body = evidence_body(db, protocol).await;
    let mut answer: Value = serde_json::from_slice(&body).unwrap();
    answer["amount"] = Value::from(1);
    replace_evidence_body(db, protocol, serde_json::to_vec(&answer).unwrap()).await;
}

/// The kept evidence of the first event of `event_type`: its protocol, fingerprint and the
/// event's position.
async fn evidence_of(db: &TestDb, event_type: &str) -> (String, Option<String>, i64) {
    let position: i64 =
        sqlx::query("SELECT position FROM events WHERE event_type = $1 ORDER BY position LIMIT 1")
            .bind(event_type)
            .fetch_one(&db.store.read)
            .await
            .unwrap()
            .try_get("position")
            .unwrap();
    let row = sqlx::query(
        "SELECT protocol, key_fingerprint FROM gateway_evidence \
                           WHERE first_position <= $1 AND last_position >= $1",
    )
    .bind(position)
    .fetch_one(&db.store.read)
    .await
    .unwrap();
    (
        row.try_get("protocol").unwrap(),
        row.try_get("key_fingerprint").unwrap(),
        position,
    )
}

/// How the sandbox finishes the refund of [`purchase_and_refund`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refunds {
    /// After its refund delay, found by the reconciler's lookup.
    Later,
    /// Before it answers the refund request, which says so.
    FinishedInAnswer,
}

/// A payment whose notification the sandbox never sends, found by the reconciler asking the
/// gateway over `protocol`; then a partial refund, settled from the gateway's answers.
async fn reconciled_purchase_and_refund(
    db: &TestDb,
    channel: aggregates::Channel,
    protocol: gateways::routing::ProviderName,
) -> App {
    purchase_and_refund(db, channel, protocol, Refunds::Later).await
}

/// [`reconciled_purchase_and_refund`], with the refund finished as `refunds` says.
async fn purchase_and_refund(
    db: &TestDb,
    channel: aggregates::Channel,
    protocol: gateways::routing::ProviderName,
    refunds: Refunds,
) -> App {
    let app = App::spawn_sandbox(db, |setup| {
        setup.sandbox_protocols.insert(channel, protocol);
    })
    .await;
    let token = app.token("alice", payledger::auth::Role::User);
    let (_, order) = app
        .post(
            "/v1/orders",
            &token,
            json!({"plan_id": "pro-monthly", "channel": channel.as_str()}),
        )
        .await;
    let sandbox_charge = order["qr_code"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let dropped = sandbox::PayOptions {
        drop: true,
        ..sandbox::PayOptions::default()
    };
    app.sandbox
        .as_ref()
        .unwrap()
        .pay(sandbox_charge, &dropped)
        .unwrap();
    let id = order["id"].as_str().unwrap().to_owned();
    let report = reconciler::run_once(&app.state, &AT_ONCE).await.unwrap();
    assert_eq!(report.confirmed, 1, "{report}");
    app.poll_until(&id, "alice", |order| order["status"] == "paid")
        .await;
    let admin = app.token("ops", payledger::auth::Role::Admin);
    if refunds == Refunds::FinishedInAnswer {
        let in_answer = sandbox::KnobsUpdate {
            refunds_finish_in_answer: Some(true),
            ..sandbox::KnobsUpdate::default()
        };
        app.sandbox
            .as_ref()
            .unwrap()
            .update_knobs(in_answer)
            .unwrap();
    }
    let (status, refund) = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            &admin,
            json!({"amount": 1000, "reason": "goodwill"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{refund}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        reconciler::run_once(&app.state, &AT_ONCE).await.unwrap();
        let (_, body) = app.get(&format!("/v1/orders/{id}"), "alice").await;
        if body["status"] == "partially_refunded" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app
}

/// Every pending order is old enough to look up.
const AT_ONCE: ReconcilerSettings = ReconcilerSettings {
    pending_age: std::time::Duration::ZERO,
    interval: std::time::Duration::from_secs(30),
    pending_batch: reconciler::PENDING_BATCH_MAX,
};

/// Changes one byte of the first kept body of `protocol`, as the owner of the tables could,
/// with the append-only triggers out of the way.
async fn tamper_evidence_body(db: &TestDb, protocol: &str) {
    let mut changed = evidence_body(db, protocol).await;
    let middle = changed.len() / 2;
    changed[middle] = if changed[middle] == b'A' { b'B' } else { b'A' };
    replace_evidence_body(db, protocol, changed).await;
}

/// Replaces the first kept body of `protocol`, with the append-only triggers out of the way.
async fn replace_evidence_body(db: &TestDb, protocol: &str, changed: Vec<u8>) {
    let mut connection = db.store.read.acquire().await.unwrap();
    let statements: &[&str] = if db.store.kind() == "postgres" {
        &["ALTER TABLE gateway_evidence DISABLE TRIGGER USER"]
    } else {
        &["DROP TRIGGER IF EXISTS gateway_evidence_append_only_update"]
    };
    for statement in statements {
        sqlx::query(statement)
            .execute(&mut *connection)
            .await
            .unwrap();
    }
    sqlx::query(
        "UPDATE gateway_evidence SET body = $1 \
         WHERE id = (SELECT min(id) FROM gateway_evidence WHERE protocol = $2)",
    )
    .bind(changed)
    .bind(protocol)
    .execute(&mut *connection)
    .await
    .unwrap();
    if db.store.kind() == "postgres" {
        sqlx::query("ALTER TABLE gateway_evidence ENABLE TRIGGER USER")
            .execute(&mut *connection)
            .await
            .unwrap();
    }
}
