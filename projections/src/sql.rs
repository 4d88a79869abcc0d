//! The little SQL plumbing every view shares: binding text and integers portably.

/// A bound parameter: the view SQL only needs text and integers.
pub(crate) enum Bind {
    Text(String),
    Int(i64),
    OptText(Option<String>),
}

/// The serde name of a unit enum variant (`Tier::Pro` -> "pro").
pub(crate) fn enum_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(error) => format!("unserialisable: {error}"),
    }
}
