//! The little SQL plumbing every view shares: binding text and integers portably.

use sqlx::AnyConnection;

use crate::error::ProjectionError;

/// A bound parameter: the view SQL only needs text and integers.
pub(crate) enum Bind {
    Text(String),
    Int(i64),
    OptText(Option<String>),
}

pub(crate) async fn execute(
    connection: &mut AnyConnection,
    sql: &str,
    binds: Vec<Bind>,
) -> Result<(), ProjectionError> {
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = match bind {
            Bind::Text(text) => query.bind(text),
            Bind::Int(number) => query.bind(number),
            Bind::OptText(text) => query.bind(text),
        };
    }
    query.execute(connection).await?;
    Ok(())
}

/// The serde name of a unit enum variant (`Tier::Pro` -> "pro").
pub(crate) fn enum_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(error) => format!("unserialisable: {error}"),
    }
}
