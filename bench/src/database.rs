//! Scratch databases: a fresh PostgreSQL database per use, dropped when its guard goes out of
//! scope (also on error), or an SQLite file in a temporary directory.

use std::time::Duration;

use anyhow::Context;
use sqlx::Connection;

/// Where PostgreSQL is when nothing says otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server scratch databases are created on: `PAYLEDGER_BENCH_POSTGRES_URL`, else
/// `DATABASE_URL` when it is a PostgreSQL URL, else the local default.
pub fn postgres_admin_url() -> String {
    let non_empty = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    non_empty("PAYLEDGER_BENCH_POSTGRES_URL")
        .or_else(|| {
            non_empty("DATABASE_URL")
                .filter(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"))
        })
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// The same server and credentials as `admin_url`, database `name`.
fn with_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse(admin_url).context("the PostgreSQL URL does not parse")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// A fresh PostgreSQL database, dropped (with `FORCE`, so lingering connections do not keep
/// it alive) when this guard is dropped.
pub struct ScratchPostgres {
    admin_url: String,
    name: String,
    pub url: String,
}

impl ScratchPostgres {
    pub async fn create(admin_url: &str, label: &str) -> anyhow::Result<Self> {
        let name = format!("payledger_bench_{label}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::PgConnection::connect(admin_url),
        )
        .await
        .context("connecting to PostgreSQL timed out")?
        .with_context(|| {
            format!(
                "cannot connect to PostgreSQL (set PAYLEDGER_BENCH_POSTGRES_URL; tried {})",
                redact(admin_url)
            )
        })?;
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .with_context(|| format!("cannot create the database {name}"))?;
        let _ = admin.close().await;
        Ok(Self {
            url: with_database(admin_url, &name)?,
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the async runtime, which must not be blocked on from its own
        // threads: do the work on a plain thread with a runtime of its own.
        let worker = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => return Err(anyhow::Error::from(error)),
            };
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                let _ = admin.close().await;
                Ok(())
            })
        });
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!(
                "could not drop the scratch database {}: {error:#}",
                self.name
            ),
            Err(_) => eprintln!("could not drop the scratch database {}", self.name),
        }
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}
