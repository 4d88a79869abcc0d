//! Fresh databases for tests, and a macro that runs one test body on both stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::PathBuf;

use payledger::config::DatabaseUrl;
use payledger::store::{self, Store};
use sqlx::{Connection, Executor, PgConnection};

/// An HTTP client for the tests. Its idle connections are dropped before the server's own
/// idle limit (the header read timeout, 10 s by default) closes them, so a request is never
/// sent on a connection the server is closing at that moment.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Used when neither `PAYLEDGER_TEST_POSTGRES_URL` nor a postgres `DATABASE_URL` is set.
/// The PostgreSQL tests are never skipped: without a server they fail and say why.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A migrated, empty database that is removed when the test is done with it.
pub struct TestDb {
    pub url: DatabaseUrl,
    pub store: Store,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteDir(PathBuf),
    PostgresDatabase { admin_url: String, name: String },
}

pub fn postgres_admin_url() -> String {
    std::env::var("PAYLEDGER_TEST_POSTGRES_URL")
        .ok()
        .or_else(|| {
            std::env::var("DATABASE_URL")
                .ok()
                .filter(|url| url.starts_with("postgres"))
        })
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// Replaces the database name of a postgres URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (without_query, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = without_query.find("://").map_or(0, |index| index + 3);
    let base = match without_query[scheme_end..].find('/') {
        Some(slash) => &without_query[..scheme_end + slash],
        None => without_query,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("payledger-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = DatabaseUrl::sqlite_in(&dir);
        Self::open(url, Cleanup::SqliteDir(dir)).await
    }

    pub async fn postgres() -> Self {
        let admin_url = postgres_admin_url();
        let name = format!("payledger_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|error| {
            panic!("PostgreSQL tests need a server ({admin_url} failed: {error}); run scripts/test.sh, which finds or starts one")
        });
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        admin.close().await.unwrap();
        let url = DatabaseUrl::parse(&with_database(&admin_url, &name)).unwrap();
        Self::open(url, Cleanup::PostgresDatabase { admin_url, name }).await
    }

    async fn open(url: DatabaseUrl, cleanup: Cleanup) -> Self {
        let store = Store::connect(&url).await.unwrap();
        store::migrate(&store).await.unwrap();
        Self {
            url,
            store,
            cleanup,
        }
    }

    /// Closes the pools and removes the database.
    pub async fn finish(self) {
        self.store.close().await;
        match self.cleanup {
            Cleanup::SqliteDir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::PostgresDatabase { admin_url, name } => {
                let mut admin = PgConnection::connect(&admin_url).await.unwrap();
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .unwrap();
            }
        }
    }
}

/// Declares `async fn name(db: &TestDb) { .. }` tests that run once on SQLite and once on
/// PostgreSQL, as `name::sqlite` and `name::postgres`.
macro_rules! on_both_stores {
    ($(async fn $name:ident($db:ident: &TestDb) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn body($db: &$crate::helpers::TestDb) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    let db = $crate::helpers::TestDb::sqlite().await;
                    body(&db).await;
                    db.finish().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    let db = $crate::helpers::TestDb::postgres().await;
                    body(&db).await;
                    db.finish().await;
                }
            }
        )*
    };
}
pub(crate) use on_both_stores;

#[test]
fn database_names_are_swapped_in_postgres_urls() {
    assert_eq!(
        with_database("postgres://u@h:5/postgres", "t1"),
        "postgres://u@h:5/t1"
    );
    assert_eq!(
        with_database("postgres://u@h:5/postgres?sslmode=disable", "t1"),
        "postgres://u@h:5/t1?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://u@h:5", "t1"),
        "postgres://u@h:5/t1"
    );
}
