//! The migration that turns the inbox's bodies into bytes keeps every row written before it:
//! a body kept as text comes back as exactly its UTF-8 bytes, on both stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sqlx::{AnyConnection, Connection, Executor, Row};

use crate::helpers::{postgres_admin_url, with_database};

/// The first migration that keeps inbox bodies as bytes.
const BYTES_VERSION: &str = "20261204000001";

/// A body an earlier version kept as text: not ASCII, with an escaped NUL.
const TEXT_BODY: &str = "{\"id\":\"evt_legacy\",\"note\":\"caf\u{e9} \u{652f}\u{4ed8} \\u0000\"}";

/// The backend's migration files in order, split into those before [`BYTES_VERSION`] and the
/// rest.
fn migrations(backend: &str) -> (Vec<String>, Vec<String>) {
    let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    names.sort();
    let read = |name: &String| std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
    let (before, rest): (Vec<&String>, Vec<&String>) =
        names.iter().partition(|name| name.as_str() < BYTES_VERSION);
    assert!(rest[0].starts_with(BYTES_VERSION), "{rest:?}");
    (
        before.into_iter().map(read).collect(),
        rest.into_iter().map(read).collect(),
    )
}

const INSERT_TEXT_ROW: &str = "INSERT INTO gateway_events (provider, event_id, event_type, \
     order_id, outcome, body, received_at, updated_at, deliveries, position) \
     VALUES ('pingpp', 'evt_legacy', 'summary.daily.available', NULL, 'ignored', $1, \
     '2026-11-30T12:00:00.000000Z', '2026-11-30T12:00:00.000000Z', 2, NULL)";

const SELECT_ROW: &str =
    "SELECT body, outcome, CAST(deliveries AS BIGINT) AS deliveries FROM gateway_events \
     WHERE provider = 'pingpp' AND event_id = 'evt_legacy'";

/// Runs the migrations before [`BYTES_VERSION`], writes a row the way they kept it, runs the
/// rest and checks the row: the same steps on either store.
async fn text_row_survives_as_its_bytes(connection: &mut AnyConnection, backend: &str) {
    let (before, rest) = migrations(backend);
    for sql in &before {
        connection.execute(sqlx::raw_sql(sql)).await.unwrap();
    }
    sqlx::query(INSERT_TEXT_ROW)
        .bind(TEXT_BODY)
        .execute(&mut *connection)
        .await
        .unwrap();
    for sql in &rest {
        connection.execute(sqlx::raw_sql(sql)).await.unwrap();
    }
    let row = sqlx::query(SELECT_ROW)
        .fetch_one(&mut *connection)
        .await
        .unwrap();
    assert_eq!(
        row.try_get::<Vec<u8>, _>("body").unwrap(),
        TEXT_BODY.as_bytes()
    );
    assert_eq!(row.try_get::<String, _>("outcome").unwrap(), "ignored");
    assert_eq!(row.try_get::<i64, _>("deliveries").unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_rows_kept_as_text_survive_as_their_bytes_on_sqlite() {
    sqlx::any::install_default_drivers();
    let dir = std::env::temp_dir().join(format!("payledger-inbox-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("ledger.db").display());
    let mut connection = AnyConnection::connect(&url).await.unwrap();
    text_row_survives_as_its_bytes(&mut connection, "sqlite").await;
    // SQLite keeps any value in any column: the body must now be stored as a blob.
    let kind: String = sqlx::query("SELECT typeof(body) AS kind FROM gateway_events")
        .fetch_one(&mut connection)
        .await
        .unwrap()
        .try_get("kind")
        .unwrap();
    assert_eq!(kind, "blob");
    connection.close().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_rows_kept_as_text_survive_as_their_bytes_on_postgres() {
    sqlx::any::install_default_drivers();
    let admin_url = postgres_admin_url();
    let name = format!("payledger_inbox_{}", uuid::Uuid::new_v4().simple());
    let mut admin = AnyConnection::connect(&admin_url).await.unwrap();
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let mut connection = AnyConnection::connect(&with_database(&admin_url, &name))
        .await
        .unwrap();
    text_row_survives_as_its_bytes(&mut connection, "postgres").await;
    connection.close().await.unwrap();
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
}
