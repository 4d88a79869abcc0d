//! A log written by an earlier version keeps loading: its events decode (through upcasters
//! and the defaults of fields added since), its views rebuild to what that version built, and
//! a full refund of one of its orders takes back exactly the period it bought.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use aggregates::{Order, Subscription, SubscriptionEvent};
use cqrs_es::Aggregate;
use projections::log::{self as event_log, LedgerEvent};
use projections::{Projector, Tables};
use serde_json::Value;
use sqlx::{Column, Row};

use crate::helpers::{on_both_stores, TestDb};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/log-v1");

/// Inserts the fixture's rows as they were stored, then lets the projector build the views.
async fn load_fixture(db: &TestDb) -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{FIXTURE}/events.jsonl")).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let json = match db.store.kind() {
        "postgres" => |n: usize| format!("CAST(${n} AS jsonb)"),
        _ => |n: usize| format!("${n}"),
    };
    for row in &rows {
        let sql = format!(
            "INSERT INTO events (position, aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, {}, {})",
            json(7),
            json(8)
        );
        sqlx::query(&sql)
            .bind(row["position"].as_i64().unwrap())
            .bind(row["aggregate_type"].as_str().unwrap())
            .bind(row["aggregate_id"].as_str().unwrap())
            .bind(row["sequence"].as_i64().unwrap())
            .bind(row["event_type"].as_str().unwrap())
            .bind(row["event_version"].as_str().unwrap())
            .bind(row["payload"].to_string())
            .bind(row["metadata"].to_string())
            .execute(&db.store.read)
            .await
            .unwrap();
    }
    Projector::new(db.store.read.clone(), Tables::live())
        .catch_up(None, None)
        .await
        .unwrap();
    rows
}

async fn verify(db: &TestDb) -> payledger::audit::VerifyReport {
    payledger::audit::verify(
        &db.store.read,
        db.store.dialect(),
        None,
        &mut payledger::audit::verify::ChainOnly,
        |_| {},
    )
    .await
    .unwrap()
}

/// A view table as JSON rows, keyed like the fixture.
async fn table(db: &TestDb, name: &str, key: &str) -> Vec<BTreeMap<String, Value>> {
    let rows = sqlx::query(&format!("SELECT * FROM {name} ORDER BY {key}"))
        .fetch_all(&db.store.read)
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            row.columns()
                .iter()
                .map(|column| {
                    let name = column.name();
                    let value = if let Ok(value) = row.try_get::<i64, _>(name) {
                        Value::from(value)
                    } else if let Ok(value) = row.try_get::<String, _>(name) {
                        Value::from(value)
                    } else {
                        Value::Null
                    };
                    (name.to_owned(), value)
                })
                .collect()
        })
        .collect()
}

on_both_stores! {
    async fn a_log_written_before_the_chain_is_linked_once_and_verifies(db: &TestDb) {
        let rows = load_fixture(db).await;
        let unlinked = verify(db).await;
        assert!(!unlinked.is_clean(), "rows without a hash are reported");
        let linked = payledger::store::link_chain(&db.store).await.unwrap();
        assert_eq!(linked, u64::try_from(rows.len()).unwrap());
        assert_eq!(payledger::store::link_chain(&db.store).await.unwrap(), 0, "linked once");
        let report = verify(db).await;
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!(report.head_position, rows.last().unwrap()["position"].as_i64().unwrap());
        // The payloads were kept as stored: the old shapes still decode.
        let decoded = event_log::read_after(&db.store.read, 0, 500).await.unwrap();
        assert_eq!(decoded.len(), rows.len());
    }

    async fn a_log_written_by_an_earlier_version_rebuilds_the_same_views(db: &TestDb) {
        let rows = load_fixture(db).await;
        // Finishing the earlier version's membership work finds nothing left to do: every
        // payment of the log was activated (and one revoked) already.
        payledger::process::membership::finish(db.store.clone()).await;
        let decoded = event_log::read_after(&db.store.read, 0, 500).await.unwrap();
        assert_eq!(decoded.len(), rows.len(), "every stored event decodes, none was added");
        let expected: BTreeMap<String, Vec<BTreeMap<String, Value>>> = serde_json::from_str(
            &std::fs::read_to_string(format!("{FIXTURE}/views.json")).unwrap(),
        )
        .unwrap();
        for (view, key) in Tables::live().views() {
            let rebuilt = table(db, view, key).await;
            let stored = &expected[view.trim_start_matches("view_")];
            assert_eq!(rebuilt.len(), stored.len(), "{view}");
            for (rebuilt, stored) in rebuilt.iter().zip(stored) {
                // Columns the earlier version had must hold the same values.
                for (column, value) in stored {
                    assert_eq!(rebuilt.get(column), Some(value), "{view}.{column}");
                }
            }
        }
        // Every aggregate of the log loads and agrees with its view.
        let mut connection = db.store.read.acquire().await.unwrap();
        for stream in rows.iter().filter(|row| row["sequence"] == 1) {
            let id = stream["aggregate_id"].as_str().unwrap();
            if stream["aggregate_type"] == Order::TYPE {
                let order = payledger::store::load::load::<Order>(&mut connection, id).await.unwrap();
                assert!(order.state.status().is_some(), "order {id}");
            } else {
                let membership = payledger::store::load::load::<Subscription>(&mut connection, id)
                    .await
                    .unwrap();
                let view = projections::membership::find(&db.store.read, &Tables::live(), id)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    membership.state.ends_at().map(|at| projections::schema::timestamp(&at)),
                    Some(view.ends_at),
                    "membership of {id}"
                );
            }
        }
    }

    async fn a_full_refund_of_an_earlier_order_takes_back_exactly_its_period(db: &TestDb) {
        let rows = load_fixture(db).await;
        // alice's first order (Pro monthly) was paid before payments recorded their grant (and
        // one refund of it failed). Refund it in full now, confirmed by the gateway.
        let order_id = "941898e7-f645-4f02-b4ed-4a2a607aaf63";
        let granted = rows
            .iter()
            .find(|row| row["event_type"] == "MembershipActivated")
            .map(|row| row["payload"]["MembershipActivated"].clone())
            .unwrap();
        assert_eq!(granted["order_id"], order_id);
        let charge = rows
            .iter()
            .find(|row| row["aggregate_id"] == order_id && row["event_type"] == "ChargeRequested")
            .map(|row| row["payload"]["ChargeRequested"]["charge_id"].as_str().unwrap().to_owned())
            .unwrap();
        let app = crate::app::App::spawn(db).await;
        let refund_id = aggregates::RefundId::from_uuid(uuid::Uuid::new_v4());
        app.state
            .orders
            .execute(
                order_id,
                aggregates::OrderCommand::RequestRefund {
                    refund_id,
                    amount: aggregates::Money::new(9_900, aggregates::Currency::Cny).unwrap(),
                    reason: "legacy refund".to_owned(),
                    at: chrono::Utc::now(),
                },
                &crate::app::gateway_metadata("evt_legacy_request"),
            )
            .await
            .unwrap();
        let before = payledger::store::load::load::<Subscription>(
            &mut db.store.read.acquire().await.unwrap(),
            "alice",
        )
        .await
        .unwrap();
        let body = serde_json::to_vec(&serde_json::json!({
            "id": "evt_legacy_refund01", "object": "event", "created": 1_795_000_000,
            "livemode": false, "type": "refund.succeeded", "pending_webhooks": 0,
            "request": "iar_legacy",
            "data": { "object": {
                "id": "re_legacy000000000000001", "object": "refund", "amount": 9_900,
                "status": "succeeded", "charge": charge,
                "charge_order_no": order_id.replace('-', ""), "description": "legacy refund",
                "time_succeed": 1_795_000_200,
                "metadata": { "refund_id": refund_id.to_string() },
            }},
        }))
        .unwrap();
        let response = app
            .client
            .post(app.url("/v1/webhooks/pingpp"))
            .header("content-type", "application/json")
            .header(
                "x-pingplusplus-signature",
                gateways::pingpp::signature::sign(crate::app::sandbox_key(), &body),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);

        let stream = event_log::read_stream(&db.store.read, Subscription::TYPE, "alice").await.unwrap();
        let revocations: Vec<&SubscriptionEvent> = stream
            .iter()
            .filter_map(|event| match &event.event {
                LedgerEvent::Subscription(event @ SubscriptionEvent::MembershipRevoked { .. }) => Some(event),
                _ => None,
            })
            .collect();
        assert_eq!(revocations.len(), 2, "{revocations:?}");
        let starts: chrono::DateTime<chrono::Utc> = serde_json::from_value(granted["starts_at"].clone()).unwrap();
        let ends: chrono::DateTime<chrono::Utc> = serde_json::from_value(granted["ends_at"].clone()).unwrap();
        let SubscriptionEvent::MembershipRevoked { order_id: revoked, removed_seconds, ends_at, grant_run, grant_tier, .. } = revocations[1] else {
            unreachable!()
        };
        assert_eq!(revoked.to_string(), order_id);
        assert_eq!(*removed_seconds, (ends - starts).num_seconds());
        assert_eq!(Some(*ends_at), before.state.ends_at().map(|end| end - (ends - starts)));
        assert_eq!((*grant_run, *grant_tier), (Some(1), Some(aggregates::Tier::Pro)));
        app.stop().await;
    }
}
