//! The read-model tables. Views are disposable functions of the log, so they are not migrated:
//! they are created here (for the live set and for a replay's scratch set, from one text) and
//! rebuilt from the log when their shape changes.
//!
//! The SQL is the common ground of PostgreSQL and SQLite: `text` and `bigint` columns,
//! timestamps as RFC 3339 UTC text with microseconds (so text order is time order).

/// Bump when any view's shape changes: a mismatch drops the views and replays the log.
pub const VIEW_SCHEMA_VERSION: i64 = 1;

/// The prefix of a replay's scratch tables.
const REPLAY_PREFIX: &str = "replay_";

/// Names of one set of view tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub prefix: &'static str,
    pub order_status: String,
    pub refund_status: String,
    pub transaction_history: String,
    pub membership: String,
    pub membership_orders: String,
    pub checkpoints: String,
}

impl Tables {
    /// A set of its own, e.g. for comparing two ways of building the views.
    pub fn with_prefix(prefix: &'static str) -> Self {
        Self {
            prefix,
            order_status: format!("{prefix}order_status"),
            refund_status: format!("{prefix}refund_status"),
            transaction_history: format!("{prefix}transaction_history"),
            membership: format!("{prefix}membership"),
            membership_orders: format!("{prefix}membership_orders"),
            checkpoints: format!("{prefix}projector_checkpoints"),
        }
    }

    /// The views the API reads.
    pub fn live() -> Self {
        Self::with_prefix("view_")
    }

    /// A scratch set an audit replay rebuilds and compares with the live one.
    pub fn replay() -> Self {
        Self::with_prefix(REPLAY_PREFIX)
    }

    /// True for a replay's scratch set: rebuilt from the log on every use, so nothing in it
    /// needs to survive a crash.
    pub fn is_scratch(&self) -> bool {
        self.prefix == REPLAY_PREFIX
    }

    /// The view tables (not the checkpoints), in a fixed order, with their key columns.
    pub fn views(&self) -> [(&str, &'static str); 5] {
        [
            (self.order_status.as_str(), "order_id"),
            (self.refund_status.as_str(), "refund_id"),
            (self.transaction_history.as_str(), "entry_id"),
            (self.membership.as_str(), "user_id"),
            (self.membership_orders.as_str(), "user_id, order_id"),
        ]
    }

    /// [`create_statements`](Self::create_statements) as PostgreSQL `UNLOGGED` tables, which
    /// write no WAL: for a scratch set, whose every row a replay writes once and a crash
    /// loses nothing the next replay would not rebuild.
    pub fn create_unlogged_statements(&self) -> Vec<String> {
        self.create_statements()
            .into_iter()
            .map(|statement| statement.replacen("CREATE TABLE", "CREATE UNLOGGED TABLE", 1))
            .collect()
    }

    /// `CREATE TABLE IF NOT EXISTS` statements for every table of the set.
    pub fn create_statements(&self) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {checkpoints} (
                    projector text PRIMARY KEY,
                    position bigint NOT NULL,
                    schema_version bigint NOT NULL
                )",
                checkpoints = self.checkpoints
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    order_id text PRIMARY KEY,
                    user_id text NOT NULL,
                    plan_id text NOT NULL,
                    plan_name text NOT NULL,
                    tier text NOT NULL,
                    period text NOT NULL,
                    channel text NOT NULL,
                    status text NOT NULL,
                    amount_minor bigint NOT NULL,
                    currency text NOT NULL,
                    paid_minor bigint NOT NULL,
                    refunded_minor bigint NOT NULL,
                    refund_pending_minor bigint NOT NULL,
                    needs_refund_minor bigint NOT NULL,
                    needs_review bigint NOT NULL,
                    charge_id text,
                    qr_code text,
                    expires_at text,
                    paid_at text,
                    created_at text NOT NULL,
                    updated_at text NOT NULL,
                    last_position bigint NOT NULL
                )",
                t = self.order_status
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {t}_by_user ON {t} (user_id, created_at)",
                t = self.order_status
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {t}_by_charge ON {t} (charge_id)",
                t = self.order_status
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    refund_id text PRIMARY KEY,
                    order_id text NOT NULL,
                    amount_minor bigint NOT NULL,
                    currency text NOT NULL,
                    status text NOT NULL,
                    reason text NOT NULL,
                    gateway_refund_id text,
                    requested_at text NOT NULL,
                    completed_at text,
                    last_position bigint NOT NULL
                )",
                t = self.refund_status
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    entry_id text PRIMARY KEY,
                    position bigint NOT NULL,
                    user_id text NOT NULL,
                    order_id text NOT NULL,
                    kind text NOT NULL,
                    amount_minor bigint NOT NULL,
                    currency text NOT NULL,
                    channel text NOT NULL,
                    gateway_ref text,
                    at text NOT NULL
                )",
                t = self.transaction_history
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {t}_by_user ON {t} (user_id, position)",
                t = self.transaction_history
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    user_id text PRIMARY KEY,
                    tier text NOT NULL,
                    plan_id text NOT NULL,
                    status text NOT NULL,
                    starts_at text NOT NULL,
                    ends_at text NOT NULL,
                    last_position bigint NOT NULL
                )",
                t = self.membership
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    user_id text NOT NULL,
                    order_id text NOT NULL,
                    plan_id text NOT NULL,
                    tier text NOT NULL,
                    period text NOT NULL,
                    starts_at text NOT NULL,
                    ends_at text NOT NULL,
                    revoked bigint NOT NULL,
                    PRIMARY KEY (user_id, order_id)
                )",
                t = self.membership_orders
            ),
        ]
    }

    /// Statements that remove every table of the set.
    pub fn drop_statements(&self) -> Vec<String> {
        let mut statements: Vec<String> = self
            .views()
            .iter()
            .map(|(table, _)| format!("DROP TABLE IF EXISTS {table}"))
            .collect();
        statements.push(format!("DROP TABLE IF EXISTS {}", self.checkpoints));
        statements
    }
}

/// Formats a timestamp the way every view stores it.
pub fn timestamp(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
