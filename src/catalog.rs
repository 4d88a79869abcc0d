//! The merchant's plan catalog from a file (`PAYLEDGER_PLANS`, TOML or JSON), read once at
//! start-up; without one, the standard catalog. A bad file is refused with the line of the
//! plan (or the syntax error) and the reason, so the service never sells from half a catalog.
//!
//! Orders copy their plan's price, tier and period when they are created, so changing the
//! file never alters an existing order.

use std::path::Path;

use aggregates::{Currency, Money, Period, Plan, PlanCatalog, PlanId, Tier};
use serde::Deserialize;
use serde_json::Value;

/// The largest catalog file read.
pub const PLANS_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// Why a catalog file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {reason}", line.map(|line| format!(" line {line}")).unwrap_or_default())]
pub struct PlansFileError {
    pub file: String,
    pub line: Option<usize>,
    pub reason: String,
}

/// One plan as the file states it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanEntry {
    id: String,
    name: String,
    tier: Tier,
    period: PeriodEntry,
    /// In minor units (fen).
    amount: i64,
    currency: String,
    #[serde(default = "default_purchasable")]
    purchasable: bool,
}

const fn default_purchasable() -> bool {
    true
}

/// `{ days = N }` or `{ months = N }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum PeriodEntry {
    Days(u32),
    Months(u32),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlansFile {
    plans: Vec<Value>,
}

/// Reads and checks the catalog at `path` (`.toml` or `.json`).
pub fn load(path: &Path) -> Result<PlanCatalog, PlansFileError> {
    let file = path.display().to_string();
    let refuse = |line: Option<usize>, reason: String| PlansFileError {
        file: file.clone(),
        line,
        reason,
    };
    let size = std::fs::metadata(path)
        .map_err(|error| refuse(None, format!("cannot read it: {error}")))?
        .len();
    if size > PLANS_FILE_BYTES_MAX {
        return Err(refuse(
            None,
            format!("larger than {PLANS_FILE_BYTES_MAX} bytes"),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|error| refuse(None, format!("cannot read it: {error}")))?;
    let extension = path.extension().and_then(|extension| extension.to_str());
    match extension {
        Some("toml") => parse_toml(&text),
        Some("json") => parse_json(&text),
        _ => Err(PlansFileError {
            file: String::new(),
            line: None,
            reason: "expected a .toml or .json file".to_owned(),
        }),
    }
    .map_err(|error| PlansFileError {
        file: file.clone(),
        ..error
    })
}

/// A catalog from JSON text: `{"plans": [{...}, ...]}`.
pub fn parse_json(text: &str) -> Result<PlanCatalog, PlansFileError> {
    let parsed: PlansFile = serde_json::from_str(text).map_err(|error| PlansFileError {
        file: String::new(),
        line: Some(error.line()),
        reason: error.to_string(),
    })?;
    // serde_json keeps no positions in a `Value`: each plan's line is where its id is.
    let lines: Vec<Option<usize>> = parsed
        .plans
        .iter()
        .map(|plan| {
            plan.get("id")
                .and_then(Value::as_str)
                .and_then(|id| line_of(text, &format!("\"{id}\"")))
        })
        .collect();
    build(parsed.plans, &lines)
}

/// A catalog from TOML text: one `[[plans]]` table per plan.
pub fn parse_toml(text: &str) -> Result<PlanCatalog, PlansFileError> {
    let document = toml_edit::Document::parse(text).map_err(|error| PlansFileError {
        file: String::new(),
        line: error.span().map(|span| line_at(text, span.start)),
        reason: error.message().to_owned(),
    })?;
    let refuse = |line, reason: &str| PlansFileError {
        file: String::new(),
        line,
        reason: reason.to_owned(),
    };
    for (key, _) in document.iter() {
        if key != "plans" {
            return Err(refuse(
                None,
                &format!("unknown key `{key}`; expected [[plans]] tables"),
            ));
        }
    }
    let tables = document
        .get("plans")
        .and_then(toml_edit::Item::as_array_of_tables)
        .ok_or_else(|| refuse(None, "expected [[plans]] tables"))?;
    let mut plans = Vec::new();
    let mut lines = Vec::new();
    for table in tables.iter() {
        let line = table.span().map(|span| line_at(text, span.start));
        let mut object = serde_json::Map::new();
        for (key, item) in table.iter() {
            let value = item
                .as_value()
                .ok_or_else(|| refuse(line, &format!("`{key}` must be a value")))?;
            object.insert(
                key.to_owned(),
                toml_to_json(value).map_err(|reason| refuse(line, &reason))?,
            );
        }
        plans.push(Value::Object(object));
        lines.push(line);
    }
    build(plans, &lines)
}

fn toml_to_json(value: &toml_edit::Value) -> Result<Value, String> {
    Ok(match value {
        toml_edit::Value::String(text) => Value::String(text.value().clone()),
        toml_edit::Value::Integer(number) => Value::from(*number.value()),
        toml_edit::Value::Boolean(flag) => Value::Bool(*flag.value()),
        toml_edit::Value::InlineTable(table) => {
            let mut object = serde_json::Map::new();
            for (key, inner) in table.iter() {
                object.insert(key.to_owned(), toml_to_json(inner)?);
            }
            Value::Object(object)
        }
        toml_edit::Value::Float(_) => return Err("amounts are whole fen, not decimals".to_owned()),
        toml_edit::Value::Datetime(_) | toml_edit::Value::Array(_) => {
            return Err("unexpected value".to_owned())
        }
    })
}

/// Checks each plan, then the catalog; errors name the plan's line.
fn build(entries: Vec<Value>, lines: &[Option<usize>]) -> Result<PlanCatalog, PlansFileError> {
    let line = |index: usize| lines.get(index).copied().flatten();
    let mut plans = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let refuse = |reason: String| PlansFileError {
            file: String::new(),
            line: line(index),
            reason: format!("plan {}: {reason}", index + 1),
        };
        let entry = PlanEntry::deserialize(entry).map_err(|error| refuse(error.to_string()))?;
        let id = PlanId::parse(&entry.id)
            .map_err(|_| refuse(format!("`{}` is not a plan id (a-z, 0-9 and -)", entry.id)))?;
        let currency = entry
            .currency
            .parse::<Currency>()
            .map_err(|_| refuse(format!("unknown currency `{}`", entry.currency)))?;
        let price = Money::new(entry.amount, currency)
            .map_err(|error| refuse(format!("amount: {error}")))?;
        let period = match entry.period {
            PeriodEntry::Days(count) => Period::Days(count),
            PeriodEntry::Months(count) => Period::of_months(count),
        };
        plans.push(Plan {
            id,
            name: entry.name.trim().to_owned(),
            tier: entry.tier,
            period,
            price,
            on_sale: entry.purchasable,
        });
    }
    PlanCatalog::from_plans(plans).map_err(|error| PlansFileError {
        file: String::new(),
        line: error.index().and_then(line),
        reason: error.to_string(),
    })
}

/// The 1-based line of byte `offset`.
fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.matches('\n').count() + 1)
}

/// The line where `needle` first appears.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.find(needle).map(|offset| line_at(text, offset))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const TOML: &str = r#"
[[plans]]
id = "pro-monthly"
name = "Pro (monthly)"
tier = "pro"
period = { months = 1 }
amount = 12900
currency = "CNY"

[[plans]]
id = "trial-week"
name = "Trial week"
tier = "pro"
period = { days = 7 }
amount = 990
currency = "CNY"
purchasable = true
"#;

    #[test]
    fn a_toml_catalog_is_read() {
        let catalog = parse_toml(TOML).unwrap();
        let trial = catalog.find(&PlanId::parse("trial-week").unwrap()).unwrap();
        assert_eq!(trial.period, Period::Days(7));
        assert_eq!(trial.price.amount_minor(), 990);
        let pro = catalog
            .find(&PlanId::parse("pro-monthly").unwrap())
            .unwrap();
        assert_eq!(pro.period, Period::Monthly);
        assert!(catalog.purchasable(pro));
    }

    #[test]
    fn a_json_catalog_is_read_and_the_standard_one_round_trips() {
        let json = r#"{"plans": [
            {"id": "free-monthly", "name": "Free", "tier": "free", "period": {"months": 1},
             "amount": 0, "currency": "CNY", "purchasable": false},
            {"id": "team-quarterly", "name": "Team", "tier": "enterprise",
             "period": {"months": 3}, "amount": 129900, "currency": "CNY"}
        ]}"#;
        let catalog = parse_json(json).unwrap();
        assert_eq!(catalog.plans().len(), 2);
        assert_eq!(catalog.plans()[1].period, Period::Months(3));
        assert!(!catalog.purchasable(&catalog.plans()[0]));
    }

    #[test]
    fn a_bad_file_is_refused_with_its_line_and_reason() {
        let wrong_tier = TOML.replace(
            "tier = \"pro\"\nperiod = { days",
            "tier = \"gold\"\nperiod = { days",
        );
        let error = parse_toml(&wrong_tier).unwrap_err();
        assert_eq!(error.line, Some(10), "{error}");
        assert!(error.reason.contains("gold"), "{error}");

        let broken = TOML.replace("amount = 990", "amount = ");
        let error = parse_toml(&broken).unwrap_err();
        assert_eq!(error.line, Some(15), "{error}");

        let twice = TOML.replace("trial-week", "pro-monthly");
        let error = parse_toml(&twice).unwrap_err();
        assert_eq!(error.line, Some(10), "{error}");
        assert!(error.reason.contains("twice"), "{error}");

        let decimal = TOML.replace("amount = 990", "amount = 9.90");
        assert!(parse_toml(&decimal)
            .unwrap_err()
            .reason
            .contains("whole fen"));
        let no_days = TOML.replace("days = 7", "days = 0");
        assert!(parse_toml(&no_days).unwrap_err().reason.contains("no time"));

        let json = "{\"plans\": [\n{\"id\": \"x\", \"name\": \"X\", \"tier\": \"pro\",\n \"period\": {\"weeks\": 1}, \"amount\": 1, \"currency\": \"CNY\"}\n]}";
        let error = parse_json(json).unwrap_err();
        assert_eq!(error.line, Some(2), "{error}");
        assert!(error.reason.contains("weeks"), "{error}");
        let error = parse_json("{\"plans\": [\n  {\"id\": }\n]}").unwrap_err();
        assert_eq!(error.line, Some(2), "{error}");
        let error = parse_json("{\"plans\": []}").unwrap_err();
        assert!(error.reason.contains("at least one"), "{error}");
    }

    #[test]
    fn the_file_kind_follows_its_extension() {
        let dir = std::env::temp_dir().join(format!("payledger-plans-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml = dir.join("plans.toml");
        std::fs::write(&toml, TOML).unwrap();
        let yaml = dir.join("plans.yaml");
        std::fs::write(&yaml, "plans: []").unwrap();
        let loaded = load(&toml);
        let refused = load(&yaml);
        let missing = load(&dir.join("missing.json"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(loaded.unwrap().plans().len(), 2);
        let refused = refused.unwrap_err();
        assert!(refused.to_string().contains("plans.yaml"), "{refused}");
        assert!(missing.unwrap_err().reason.contains("cannot read"));
    }
}
