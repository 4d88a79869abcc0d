//! Opening the pools for either backend and applying its migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AnyPool, PgPool, SqlitePool};

use std::sync::Arc;

use sqlx::{Any, Transaction};

use super::append::{Appended, Dialect};
use cqrs_es::Aggregate;
use projections::order_view::OrderView;

use super::database_url::DatabaseUrl;
use super::hub::{Commit, CommitHub};
use super::locks::Locks;

/// How many connections each pool may open. PostgreSQL serialises appends on a lock anyway;
/// SQLite has a single writer, so more connections would only queue.
const POSTGRES_POOL_SIZE: u32 = 20;
const SQLITE_POOL_SIZE: u32 = 8;
/// How long to wait for a connection (or, on SQLite, for the write lock) before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the {kind} database: {source}")]
    Connect {
        kind: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("preparing the views of the {kind} database failed: {source}")]
    Views {
        kind: &'static str,
        #[source]
        source: projections::ProjectionError,
    },
    #[error("linking the hash chain of the {kind} database failed: {source}")]
    Chain {
        kind: &'static str,
        #[source]
        source: projections::LogError,
    },
    #[error("migrating the {kind} database failed: {source}")]
    Migrate {
        kind: &'static str,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
}

/// The typed pool that cqrs-es appends through.
#[derive(Clone, Debug)]
pub enum Backend {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// An open event store.
#[derive(Clone, Debug)]
pub struct Store {
    pub backend: Backend,
    /// Every transaction of the ledger: appends with their views, reads of the log and views.
    pub read: AnyPool,
    /// Turns per aggregate, shared by every writer of this process.
    pub locks: Arc<Locks>,
    /// This process's commits, for its followers.
    pub commits: Arc<CommitHub>,
}

impl Store {
    /// Opens (and for SQLite, creates) the database. Does not migrate.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let kind = url.kind();
        let connect_error = |source| StoreError::Connect { kind, source };
        match url {
            DatabaseUrl::Postgres(text) => {
                let options = PgConnectOptions::from_str(text).map_err(connect_error)?;
                let pool = PgPoolOptions::new()
                    .max_connections(POSTGRES_POOL_SIZE)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
                let read = AnyPoolOptions::new()
                    .max_connections(POSTGRES_POOL_SIZE)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(text)
                    .await
                    .map_err(connect_error)?;
                Ok(Self::new(Backend::Postgres(pool), read))
            }
            DatabaseUrl::Sqlite(text) => {
                create_parent_dir(text)?;
                let options = SqliteConnectOptions::from_str(text)
                    .map_err(connect_error)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(SQLITE_POOL_SIZE)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
                // The file exists and is in WAL mode now (WAL is a property of the file), so
                // the second pool only needs the busy timeout to wait for the writer.
                let read = AnyPoolOptions::new()
                    .max_connections(SQLITE_POOL_SIZE)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .after_connect(|connection, _| {
                        Box::pin(async move {
                            use sqlx::Executor;
                            connection
                                .execute("PRAGMA busy_timeout = 10000; PRAGMA synchronous = FULL;")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(text)
                    .await
                    .map_err(connect_error)?;
                Ok(Self::new(Backend::Sqlite(pool), read))
            }
        }
    }

    fn new(backend: Backend, read: AnyPool) -> Self {
        Self {
            backend,
            read,
            locks: Arc::default(),
            commits: Arc::default(),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Postgres(_) => Dialect::Postgres,
            Backend::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// A transaction that will append. On SQLite it takes the write lock at once: a deferred
    /// transaction that reads first could not upgrade once another writer committed.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.dialect() {
            Dialect::Postgres => self.read.begin().await,
            Dialect::Sqlite => self.read.begin_with("BEGIN IMMEDIATE").await,
        }
    }

    /// The write transaction of a decision's `attempt` (counted from 1). The first attempt
    /// reads optimistically; a retry means another process appended to the same stream
    /// between its read and its append, so on PostgreSQL it takes the log lock before it
    /// reads and cannot be overtaken again. However hot a stream, a decision then costs at most
    /// two attempts, where optimistic retries alone could lose to a busy neighbour every time.
    /// (SQLite's write transaction already locks the database before the read.)
    pub async fn begin_decision(
        &self,
        attempt: usize,
    ) -> Result<Transaction<'static, Any>, sqlx::Error> {
        let mut transaction = self.begin_write().await?;
        if attempt > 1 && self.dialect() == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(super::append::LOG_LOCK_KEY)
                .execute(&mut *transaction)
                .await?;
        }
        Ok(transaction)
    }

    /// Hands a committed append to this process's followers.
    pub fn published(&self, appended: &Appended, orders: Vec<OrderView>) {
        if appended.views_applied {
            self.commits.publish(Commit {
                events: appended.events.clone(),
                orders,
            });
        } else if !appended.events.is_empty() {
            self.commits.report_views_behind();
        }
    }

    /// The views of the orders `appended` touched, read in its own transaction, when the
    /// views were applied there.
    pub async fn order_views(
        connection: &mut sqlx::AnyConnection,
        appended: &Appended,
    ) -> Result<Vec<OrderView>, sqlx::Error> {
        let mut views = Vec::new();
        if !appended.views_applied {
            return Ok(views);
        }
        let tables = projections::Tables::live();
        let mut seen: Vec<&str> = Vec::new();
        for event in &appended.events {
            if event.aggregate_type != aggregates::Order::TYPE
                || seen.contains(&event.aggregate_id.as_str())
            {
                continue;
            }
            seen.push(&event.aggregate_id);
            if let Some(view) =
                projections::order_view::load(connection, &tables, &event.aggregate_id).await?
            {
                views.push(view);
            }
        }
        Ok(views)
    }

    /// "postgres" or "sqlite".
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.read).await.is_ok()
    }

    /// Closes both pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.read.close().await;
        match &self.backend {
            Backend::Postgres(pool) => pool.close().await,
            Backend::Sqlite(pool) => pool.close().await,
        }
    }
}

/// Applies the backend's migrations (idempotent: applied ones are skipped) and creates the
/// view tables when missing, so every writer can apply the views in its own transaction.
pub async fn migrate(store: &Store) -> Result<(), StoreError> {
    let kind = store.kind();
    let result = match &store.backend {
        Backend::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        Backend::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
    };
    result.map_err(|source| StoreError::Migrate { kind, source })?;
    link_chain(store)
        .await
        .map_err(|source| StoreError::Chain { kind, source })?;
    projections::Projector::new(store.read.clone(), projections::Tables::live())
        .prepare()
        .await
        .map_err(|source| StoreError::Views { kind, source })
}

/// Links the rows at the top of the log stored without a hash (a log written before the hash
/// chain existed gets its chain here, once), under the log lock. Returns how many it linked.
pub async fn link_chain(store: &Store) -> Result<u64, projections::LogError> {
    let mut transaction = store.begin_write().await?;
    if store.dialect() == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(super::append::LOG_LOCK_KEY)
            .execute(&mut *transaction)
            .await?;
    }
    let (linked, _) = projections::chain::link_unlinked_tail(&mut transaction).await?;
    transaction.commit().await?;
    if linked > 0 {
        tracing::info!(linked, "linked the events stored before the hash chain");
    }
    Ok(linked)
}

fn create_parent_dir(url: &str) -> Result<(), StoreError> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    match std::path::Path::new(path).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::DataDir {
                path: parent.display().to_string(),
                source,
            })
        }
        _ => Ok(()),
    }
}
