//! Least privilege on PostgreSQL: the server's role appends and reads, and nothing more on the
//! log; it cannot switch the append-only triggers off, delete or rewrite an event, or touch
//! the evidence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aggregates::{Channel, Order, OrderCommand, OrderId, PlanCatalog, PlanId, UserId};
use payledger::config::DatabaseUrl;
use payledger::store::{self, Actor, CommandBus, EventMetadata, Source, Store};
use sqlx::{Connection, Executor, PgConnection};

use crate::helpers::TestDb;

async fn refused(connection: &mut PgConnection, sql: &str) {
    let error = connection
        .execute(sql)
        .await
        .err()
        .unwrap_or_else(|| panic!("the application role may run `{sql}`"));
    let code = error
        .as_database_error()
        .and_then(|error| error.code())
        .map(|code| code.into_owned());
    assert_eq!(code.as_deref(), Some("42501"), "`{sql}`: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_application_role_appends_but_cannot_rewrite_the_log() {
    let db = TestDb::postgres().await;
    let role = format!("payledger_app_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE ROLE {role} LOGIN"))
        .execute(&db.store.read)
        .await
        .unwrap();
    store::grants::apply_grants(&db.store.read, &role)
        .await
        .unwrap();

    // The server's start and a command, as the application role.
    let url = db
        .url
        .as_str()
        .replacen("://postgres@", &format!("://{role}@"), 1);
    assert_ne!(url, db.url.as_str(), "the test URL names the postgres user");
    let app = Store::connect(&DatabaseUrl::parse(&url).unwrap())
        .await
        .unwrap();
    store::migrate(&app).await.unwrap();
    let bus = CommandBus::<Order>::new(&app);
    let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
    let plan = PlanCatalog::standard()
        .find(&PlanId::parse("pro-monthly").unwrap())
        .cloned()
        .unwrap();
    bus.execute(
        &order_id.to_string(),
        OrderCommand::Create {
            order_id,
            user_id: UserId::parse("alice").unwrap(),
            plan,
            channel: Channel::AlipayQr,
            at: chrono::Utc::now(),
        },
        &EventMetadata {
            request_id: "grants".to_owned(),
            actor: Actor::User("alice".to_owned()),
            source: Source::Api,
            gateway_event_id: None,
            recorded_at: chrono::Utc::now(),
        },
    )
    .await
    .unwrap();
    app.close().await;

    let mut connection = PgConnection::connect(&url).await.unwrap();
    for sql in [
        "ALTER TABLE events DISABLE TRIGGER USER",
        "ALTER TABLE events DISABLE TRIGGER events_append_only",
        "DROP TRIGGER events_append_only ON events",
        "DELETE FROM events",
        "TRUNCATE events",
        "UPDATE events SET payload = payload",
        "UPDATE events SET position = position",
        "ALTER TABLE gateway_evidence DISABLE TRIGGER USER",
        "DELETE FROM gateway_evidence",
        "UPDATE gateway_evidence SET body = body",
        "UPDATE gateway_evidence_since SET after_position = 1000000",
        "DELETE FROM _sqlx_migrations",
    ] {
        refused(&mut connection, sql).await;
    }
    // The only update it has on the log, filling a missing hash, meets the trigger.
    assert!(connection
        .execute("UPDATE events SET hash = NULL")
        .await
        .is_err());
    connection.close().await.unwrap();
    // The role owns the views of this database only; both go with it.
    for sql in [format!("DROP OWNED BY {role}"), format!("DROP ROLE {role}")] {
        sqlx::query(&sql).execute(&db.store.read).await.unwrap();
    }
    db.finish().await;
}
