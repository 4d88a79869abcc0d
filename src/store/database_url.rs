//! Which event store to use, named by `DATABASE_URL`; a value of its own so that the store
//! and the settings can both speak of it without importing each other.

/// The SQLite file inside the data directory used when `DATABASE_URL` is unset.
pub const SQLITE_FILE_NAME: &str = "payledger.db";

/// Which event store to use, chosen by the scheme of `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(String),
}

impl DatabaseUrl {
    /// Parses a URL by scheme: `postgres://` / `postgresql://` or `sqlite:`.
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url.to_owned()))
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(url.to_owned()))
        } else {
            Err("expected a postgres:// or sqlite:// URL".to_owned())
        }
    }

    /// The embedded default: an SQLite file in the data directory.
    pub fn sqlite_in(data_dir: &std::path::Path) -> Self {
        let file = data_dir.join(SQLITE_FILE_NAME);
        Self::Sqlite(format!("sqlite://{}", file.display()))
    }

    /// A short name for logs and health output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Postgres(url) | Self::Sqlite(url) => url,
        }
    }
}

// A database URL may carry a password: never print it whole.
impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.kind())
    }
}
