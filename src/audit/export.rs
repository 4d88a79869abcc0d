//! `payledger export`: the transaction history (money received and refunded) as it stood at
//! an instant, for accountants and auditors, streamed from the log a page at a time and
//! ending with the head (position and hash) it was built from, so the export can be checked
//! against the log (`payledger verify --anchor`).

use std::io::Write;

use aggregates::{Money, OrderEvent};
use chrono::{DateTime, Utc};
use projections::chain::{self, Hash};
use projections::log::StoredEvent;
use projections::LedgerEvent;
use sqlx::AnyPool;

/// Events read per page of the export.
pub const EXPORT_PAGE_EVENTS: i64 = chain::CHAIN_PAGE_MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A header line, one line per entry, and a last line `#head,<position>,<hash>`.
    Csv,
    /// One JSON object per line, the last one `{"head": {"position", "hash"}}`.
    Json,
}

/// Which entries: recorded at or before `as_of`, and within `from..=to` when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub as_of: DateTime<Utc>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Log(#[from] projections::LogError),
    #[error("writing the export failed: {0}")]
    Write(#[from] std::io::Error),
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub entries: u64,
    /// The last event recorded by `as_of` (0 and the genesis link for none) and its hash.
    pub head_position: i64,
    pub head_hash: Hash,
}

/// One line of the history.
struct Entry<'a> {
    kind: &'static str,
    charge_id: &'a str,
    refund_id: String,
    amount: &'a Money,
}

const CSV_HEADER: &str =
    "position,recorded_at,kind,order_id,charge_id,refund_id,amount_minor,currency";

/// Streams the history at `window.as_of` to `out`.
pub async fn export(
    pool: &AnyPool,
    window: Window,
    format: Format,
    out: &mut impl Write,
) -> Result<Exported, ExportError> {
    let head = projections::log::head(pool).await?;
    if format == Format::Csv {
        writeln!(out, "{CSV_HEADER}")?;
    }
    let mut exported = Exported {
        entries: 0,
        head_position: 0,
        head_hash: chain::GENESIS,
    };
    let mut after = 0;
    while after < head {
        let page = chain::read_chained(pool, after, Some(head), EXPORT_PAGE_EVENTS).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.raw.position;
        for row in page {
            let recorded_at = row
                .raw
                .metadata
                .get("recorded_at")
                .and_then(|value| value.as_str())
                .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
                .map(|at| at.with_timezone(&Utc));
            if recorded_at.is_some_and(|at| at > window.as_of) {
                continue;
            }
            exported.head_position = row.raw.position;
            exported.head_hash = row
                .hash
                .as_deref()
                .and_then(chain::as_hash)
                .unwrap_or(chain::GENESIS);
            if !is_money(&row.raw.event_type) {
                continue;
            }
            let in_window = recorded_at.is_some_and(|at| {
                !matches!(window.from, Some(from) if at < from)
                    && !matches!(window.to, Some(to) if at > to)
            });
            if !in_window {
                continue;
            }
            let event = StoredEvent::decode(row.raw)?;
            let LedgerEvent::Order(order_event) = &event.event else {
                continue;
            };
            let Some(entry) = entry(order_event) else {
                continue;
            };
            let at = recorded_at.map(|at| projections::schema::timestamp(&at));
            write_entry(
                out,
                format,
                &event,
                at.as_deref().unwrap_or_default(),
                &entry,
            )?;
            exported.entries += 1;
        }
    }
    let hash = chain::to_hex(&exported.head_hash);
    match format {
        Format::Csv => writeln!(out, "#head,{},{hash}", exported.head_position)?,
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::json!({"head": {"position": exported.head_position, "hash": hash}})
        )?,
    }
    out.flush()?;
    Ok(exported)
}

fn is_money(event_type: &str) -> bool {
    matches!(
        event_type,
        "PaymentConfirmed"
            | "PaymentAmountMismatch"
            | "LatePaymentReceived"
            | "DuplicatePaymentReceived"
            | "Refunded"
    )
}

fn entry(event: &OrderEvent) -> Option<Entry<'_>> {
    Some(match event {
        OrderEvent::PaymentConfirmed {
            charge_id, amount, ..
        } => Entry {
            kind: "payment",
            charge_id: charge_id.as_str(),
            refund_id: String::new(),
            amount,
        },
        OrderEvent::PaymentAmountMismatch {
            charge_id,
            received,
            ..
        } => Entry {
            kind: "payment_amount_mismatch",
            charge_id: charge_id.as_str(),
            refund_id: String::new(),
            amount: received,
        },
        OrderEvent::LatePaymentReceived {
            charge_id, amount, ..
        } => Entry {
            kind: "late_payment",
            charge_id: charge_id.as_str(),
            refund_id: String::new(),
            amount,
        },
        OrderEvent::DuplicatePaymentReceived {
            charge_id, amount, ..
        } => Entry {
            kind: "duplicate_payment",
            charge_id: charge_id.as_str(),
            refund_id: String::new(),
            amount,
        },
        OrderEvent::Refunded {
            refund_id, amount, ..
        } => Entry {
            kind: "refund",
            charge_id: "",
            refund_id: refund_id.to_string(),
            amount,
        },
        _ => return None,
    })
}

fn write_entry(
    out: &mut impl Write,
    format: Format,
    event: &StoredEvent,
    recorded_at: &str,
    entry: &Entry<'_>,
) -> std::io::Result<()> {
    match format {
        // Every field is an id, a number, a code or a timestamp: none holds a comma or quote.
        Format::Csv => writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            event.position,
            recorded_at,
            entry.kind,
            event.aggregate_id,
            entry.charge_id,
            entry.refund_id,
            entry.amount.amount_minor(),
            entry.amount.currency().code()
        ),
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::json!({
                "position": event.position,
                "recorded_at": recorded_at,
                "kind": entry.kind,
                "order_id": event.aggregate_id,
                "charge_id": entry.charge_id,
                "refund_id": entry.refund_id,
                "amount_minor": entry.amount.amount_minor(),
                "currency": entry.amount.currency().code(),
            })
        ),
    }
}
