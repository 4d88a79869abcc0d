//! Least privilege on PostgreSQL: the migrations run as an owner role; the server runs as an
//! application role that can only append to the log and the evidence (INSERT and SELECT, and
//! fill in a missing hash), own its views, and write its checkpoints, inbox, idempotency
//! keys, snapshots and leases. Only the owner can alter a table or switch its triggers off, so the
//! application role cannot rewrite history even if the service is taken over.

use projections::Tables;
use sqlx::AnyPool;

/// Tables the application only appends to and reads.
pub const APPEND_ONLY_TABLES: [&str; 2] = ["events", "gateway_evidence"];
/// Tables the application only reads.
pub const READ_ONLY_TABLES: [&str; 2] = ["gateway_evidence_since", "_sqlx_migrations"];
/// Durable tables the application keeps itself (no DELETE but on its idempotency keys).
pub const APPLICATION_TABLES: [&str; 5] = [
    "gateway_events",
    "idempotency_keys",
    "process_checkpoints",
    "leases",
    "snapshots",
];

/// Longest role name PostgreSQL keeps (NAMEDATALEN - 1).
pub const ROLE_NAME_BYTES_MAX: usize = 63;

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error(
        "`{0}` is not a plain role name (lowercase letters, digits and _, not starting with a \
         digit, at most {ROLE_NAME_BYTES_MAX} bytes)"
    )]
    BadRoleName(String),
    #[error("granting failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// The statements that give `role` exactly what the server needs, for the owner to run after
/// the migrations (`payledger migrate --print-grants` prints them, `--apply-grants` runs them).
pub fn grant_statements(role: &str) -> Result<Vec<String>, GrantError> {
    let plain = !role.is_empty()
        && role.len() <= ROLE_NAME_BYTES_MAX
        && role
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
        && !role
            .bytes()
            .next()
            .is_some_and(|byte| byte.is_ascii_digit());
    if !plain {
        return Err(GrantError::BadRoleName(role.to_owned()));
    }
    let live = Tables::live();
    let mut views: Vec<&str> = live.views().iter().map(|(table, _)| *table).collect();
    views.push(live.checkpoints.as_str());
    let mut statements = vec![
        format!("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}"),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        // The audit replay builds and drops its scratch tables (`replay_*`), which the role
        // then owns; it owns nothing else.
        format!("GRANT CREATE ON SCHEMA public TO {role}"),
        format!(
            "GRANT SELECT, INSERT ON {} TO {role}",
            APPEND_ONLY_TABLES.join(", ")
        ),
        // The one update the log's trigger allows: filling in a missing hash.
        format!("GRANT UPDATE (hash) ON events TO {role}"),
        format!("GRANT SELECT ON {} TO {role}", READ_ONLY_TABLES.join(", ")),
        format!(
            "GRANT SELECT, INSERT, UPDATE ON {} TO {role}",
            APPLICATION_TABLES.join(", ")
        ),
        format!("GRANT DELETE ON idempotency_keys TO {role}"),
    ];
    // The views are the application's own: derived from the log, rebuilt by the server when
    // their schema changes, so the role owns them (which needs the owner to be a member of
    // the role, or a superuser).
    statements.extend(
        views
            .iter()
            .map(|table| format!("ALTER TABLE {table} OWNER TO {role}")),
    );
    Ok(statements)
}

/// Runs [`grant_statements`] through `pool` (which must be the owner's).
pub async fn apply_grants(pool: &AnyPool, role: &str) -> Result<(), GrantError> {
    let statements = grant_statements(role)?;
    let mut transaction = pool.begin().await?;
    for statement in statements {
        sqlx::query(&statement).execute(&mut *transaction).await?;
    }
    transaction.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_plain_role_names_are_granted_to() {
        assert!(grant_statements("payledger_app").is_ok());
        for bad in [
            "",
            "App",
            "app; DROP TABLE events",
            "1app",
            "app\"",
            &"a".repeat(64),
        ] {
            assert!(grant_statements(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_log_is_never_granted_delete_or_a_full_update() {
        for statement in grant_statements("app").unwrap() {
            if statement.contains(" ON events") || statement.contains("gateway_evidence ") {
                assert!(!statement.contains("DELETE"), "{statement}");
                assert!(!statement.contains("TRUNCATE"), "{statement}");
                assert!(
                    !statement.contains("UPDATE ON") && !statement.contains("UPDATE,"),
                    "{statement}"
                );
            }
        }
    }
}
