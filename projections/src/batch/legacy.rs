//! The order-status view's rules for refund events stored as version 1.0, and only for them.
//!
//! Since 1.1, `Refunded` carries the order as the refund left it and `RefundFailed` the amount
//! it released, and the view copies them. Logs written before still hold 1.0 events without
//! those fields, and they are never rewritten. An upcaster cannot fill the fields in: it sees
//! one event at a time, and what a refund left depends on the order's earlier events. So for
//! 1.0 events the view derives the values from the row it already holds, as the view did when
//! those events were written; nothing else may depend on this module.

use std::collections::HashMap;

use aggregates::RefundId;

use super::{OrderRow, RefundRow, Slot};
use crate::error::ProjectionError;

/// Folds a 1.0 `Refunded` of `amount_minor` into the order's status and totals.
pub(super) fn refunded(row: &mut OrderRow, amount_minor: i64) {
    // A closed order gives back the late money it holds and stays closed.
    if matches!(row.status.as_str(), "expired" | "failed" | "cancelled") {
        row.needs_refund_minor -= amount_minor;
    } else {
        row.status = if row.refunded_minor + amount_minor >= row.paid_minor {
            "refunded"
        } else {
            "partially_refunded"
        }
        .to_owned();
    }
    row.refunded_minor += amount_minor;
}

/// What a 1.0 `RefundFailed` released: the amount its request reserved, as the refund view
/// holds it.
pub(super) fn released(
    refunds: &HashMap<String, Slot<RefundRow>>,
    refund_id: &RefundId,
    position: i64,
) -> Result<i64, ProjectionError> {
    refunds
        .get(&refund_id.to_string())
        .and_then(|slot| slot.row.as_ref())
        .map(|row| row.amount_minor)
        // A refund the view never saw requested: the log and the view disagree.
        .ok_or_else(|| ProjectionError::MissingRow {
            position,
            what: "refund",
            id: refund_id.to_string(),
        })
}
