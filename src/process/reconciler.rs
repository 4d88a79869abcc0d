//! The reconciler: the periodic pass that decides which orders the ledger must ask the
//! gateway about, and hands each to a use case (`ledger::reconcile_order`,
//! `ledger::reconcile_refunds`): orders pending for too long, orders past their payment
//! window, refunds still pending. It also lists gateway events no order took, for the people
//! who settle them.
//!
//! However many instances run, one pass runs at a time: on PostgreSQL under a session advisory
//! lock, on SQLite under a lease row (one process owns an SQLite file in practice, but a CLI
//! pass may run beside the server).

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use projections::order_status::{self, OrderStatusRow};
use projections::schema::timestamp;
use projections::Tables;
use sqlx::any::Any;
use sqlx::pool::PoolConnection;
use sqlx::Row;

use super::reconcile_schedule;
use crate::ledger::{
    self, Due, Expiry, PaymentCheck, PaymentRecorded, ReconcileOrder, ReconcileRefunds, Reconciled,
    RefundsReconciled,
};
use crate::state::AppState;

/// Orders pending longer than this are looked up at the gateway.
pub const DEFAULT_PENDING_AGE: Duration = Duration::from_secs(60);
/// Pause between two passes of the background reconciler.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Pending orders looked up per pass, oldest first; the rest wait for the next pass.
pub const PENDING_BATCH_MAX: i64 = 200;
/// Pause between passes while more pending orders are due than one pass takes.
const CATCH_UP_PAUSE: Duration = Duration::from_secs(1);
/// Expired orders closed per pass.
const EXPIRY_BATCH_MAX: i64 = 200;
/// Unsettled gateway events listed in a report, newest first.
const UNSETTLED_LIST_MAX: i64 = 100;
/// The PostgreSQL advisory lock key of the reconciler, as `pg_locks` shows it (the log's
/// insert trigger uses 7271100001; the two must differ).
pub const ADVISORY_LOCK_KEY: i64 = 7_271_100_002;
/// The reconciler's row in the `leases` table (SQLite).
pub const LEASE_NAME: &str = "reconciler";
/// How long a lease outlives a holder that died mid-pass. Longer than any bounded pass.
const LEASE_TTL: chrono::Duration = chrono::Duration::minutes(15);

/// When and how often to reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcilerSettings {
    /// Orders pending longer than this are looked up at the gateway (and, while unpaid, again
    /// after this, doubling up to `reconcile_schedule::RECHECK_MAX`).
    pub pending_age: Duration,
    /// Pause between two passes of the background reconciler.
    pub interval: Duration,
    /// Pending orders looked up per pass; a full batch starts the next pass at once.
    pub pending_batch: i64,
}

impl Default for ReconcilerSettings {
    fn default() -> Self {
        Self {
            pending_age: DEFAULT_PENDING_AGE,
            interval: DEFAULT_INTERVAL,
            pending_batch: PENDING_BATCH_MAX,
        }
    }
}

/// A gateway event no order took: unmatched (no order of ours) or deferred (too early).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsettledEvent {
    pub provider: String,
    pub event_id: String,
    pub event_type: String,
    pub outcome: String,
    pub received_at: String,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Another instance held the lock: this pass did nothing.
    pub skipped: bool,
    /// Orders handed to a use case: looked up at the gateway, or expired (their charge closed
    /// first; without a charge, closed without asking).
    pub checked: usize,
    /// Orders paid from the gateway's answer.
    pub confirmed: usize,
    /// Money the gateway reported that was recorded but did not pay its order (a wrong
    /// amount, or after the order closed): flagged for review, as its webhook would have been.
    pub flagged: usize,
    /// Orders closed as expired.
    pub expired: usize,
    /// Charges the gateway closed as their orders expired (their QR codes take no more money).
    pub charges_closed: usize,
    /// Pending refunds settled from the gateway's answer.
    pub refunds_settled: usize,
    /// Pending refunds the gateway never received, recorded failed so their money is free to
    /// be refunded again.
    pub refunds_failed: usize,
    /// More pending orders were due than this pass took: the next starts at once.
    pub more_due: bool,
    /// Orders the gateway could not tell us about; tried again next pass.
    pub gateway_errors: usize,
    /// Orders whose payment or expiry could not be recorded; tried again next pass.
    pub failed: usize,
    /// Gateway events no order took, newest first (at most 100).
    pub unsettled: Vec<UnsettledEvent>,
}

impl Report {
    fn skipped() -> Self {
        Self {
            skipped: true,
            ..Self::default()
        }
    }

    /// Whether the pass changed the ledger or met trouble (worth an info line).
    pub fn did_something(&self) -> bool {
        self.confirmed > 0
            || self.flagged > 0
            || self.expired > 0
            || self.charges_closed > 0
            || self.refunds_settled > 0
            || self.refunds_failed > 0
            || self.gateway_errors > 0
            || self.failed > 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.skipped {
            return writeln!(
                formatter,
                "another instance is reconciling: this pass was skipped"
            );
        }
        writeln!(
            formatter,
            "reconciled: {} orders checked, {} payments confirmed, {} flagged for review, \
             {} orders expired, {} charges closed, {} refunds settled, {} refunds never sent \
             recorded failed, {} gateway errors, {} failed",
            self.checked,
            self.confirmed,
            self.flagged,
            self.expired,
            self.charges_closed,
            self.refunds_settled,
            self.refunds_failed,
            self.gateway_errors,
            self.failed
        )?;
        if self.unsettled.is_empty() {
            return writeln!(formatter, "no unmatched or deferred gateway events");
        }
        writeln!(
            formatter,
            "{} unmatched or deferred gateway events (newest first):",
            self.unsettled.len()
        )?;
        for event in &self.unsettled {
            writeln!(
                formatter,
                "  {}  {} {}  {}  {}",
                event.received_at, event.provider, event.event_id, event.event_type, event.outcome
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reconciliation could not read or lock the database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Runs the reconciler until the task is dropped: a pass every `interval`.
pub async fn follow(state: AppState, settings: ReconcilerSettings) {
    let mut pause = settings.interval;
    loop {
        // Waiting first spreads instances that restart together, and lets the views catch up.
        tokio::time::sleep(pause).await;
        let result = run_once(&state, &settings).await;
        pause = match &result {
            Ok(report) if report.more_due => CATCH_UP_PAUSE.min(settings.interval),
            _ => settings.interval,
        };
        match result {
            Ok(report) if report.did_something() => tracing::info!(
                checked = report.checked,
                confirmed = report.confirmed,
                flagged = report.flagged,
                expired = report.expired,
                charges_closed = report.charges_closed,
                refunds_settled = report.refunds_settled,
                refunds_failed = report.refunds_failed,
                gateway_errors = report.gateway_errors,
                failed = report.failed,
                unsettled = report.unsettled.len(),
                "reconciliation pass"
            ),
            Ok(report) => tracing::debug!(
                skipped = report.skipped,
                checked = report.checked,
                unsettled = report.unsettled.len(),
                "reconciliation pass changed nothing"
            ),
            Err(error) => tracing::error!(%error, "reconciliation pass failed; retrying later"),
        }
    }
}

/// One pass, now.
pub async fn run_once(
    state: &AppState,
    settings: &ReconcilerSettings,
) -> Result<Report, ReconcileError> {
    run_once_at(state, settings, Utc::now()).await
}

/// One pass as of `now` (what "pending too long" and "past expiry" are measured against).
/// Skipped, and reported so, when another instance is reconciling.
pub async fn run_once_at(
    state: &AppState,
    settings: &ReconcilerSettings,
    now: DateTime<Utc>,
) -> Result<Report, ReconcileError> {
    let Some(lock) = Lock::take(state).await? else {
        return Ok(Report::skipped());
    };
    let result = pass(state, settings, now).await;
    lock.release(state).await;
    result
}

/// The right to run a pass.
enum Lock {
    /// A session advisory lock held by this connection. The connection is closed, never
    /// pooled, when dropped: a pooled connection still holding the lock (after a failed
    /// unlock, or a pass cancelled midway) would block every later pass.
    Advisory(PoolConnection<Any>),
    /// The lease row, held under this holder token until released or expired.
    Lease { holder: String },
}

impl Lock {
    async fn take(state: &AppState) -> Result<Option<Self>, sqlx::Error> {
        if state.store.kind() == "postgres" {
            let mut connection = state.store.read.acquire().await?;
            connection.close_on_drop();
            let locked: bool = sqlx::query("SELECT pg_try_advisory_lock($1) AS locked")
                .bind(ADVISORY_LOCK_KEY)
                .fetch_one(&mut *connection)
                .await?
                .try_get("locked")?;
            return Ok(locked.then_some(Self::Advisory(connection)));
        }
        let holder = format!("pass-{}", uuid::Uuid::new_v4().simple());
        let now = Utc::now();
        sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, '', '') \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(LEASE_NAME)
        .execute(&state.store.read)
        .await?;
        // Taken only when the current lease has run out (or was released): of two racing
        // takers, the second finds the first's fresh expiry and updates nothing.
        let taken = sqlx::query(
            "UPDATE leases SET holder = $2, expires_at = $3 WHERE name = $1 AND expires_at < $4",
        )
        .bind(LEASE_NAME)
        .bind(holder.clone())
        .bind(timestamp(&(now + LEASE_TTL)))
        .bind(timestamp(&now))
        .execute(&state.store.read)
        .await?
        .rows_affected();
        Ok((taken == 1).then_some(Self::Lease { holder }))
    }

    /// Gives the lock up. Failures are only logged: the connection closes (releasing the
    /// advisory lock) or the lease runs out on its own.
    async fn release(self, state: &AppState) {
        let result = match self {
            Self::Advisory(mut connection) => {
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(ADVISORY_LOCK_KEY)
                    .execute(&mut *connection)
                    .await
            }
            Self::Lease { holder } => {
                sqlx::query("UPDATE leases SET expires_at = '' WHERE name = $1 AND holder = $2")
                    .bind(LEASE_NAME)
                    .bind(holder)
                    .execute(&state.store.read)
                    .await
            }
        };
        if let Err(error) = result {
            tracing::warn!(%error, "releasing the reconciler lock failed; it lapses on its own");
        }
    }
}

async fn pass(
    state: &AppState,
    settings: &ReconcilerSettings,
    now: DateTime<Utc>,
) -> Result<Report, ReconcileError> {
    let tables = Tables::live();
    let request_id = format!("reconciler-{}", uuid::Uuid::new_v4().simple());
    let mut report = Report::default();
    let cutoff = chrono::Duration::from_std(settings.pending_age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age));

    // Past their payment window: pending orders past expiry, and orders that never got a
    // charge (the process stopped between recording the order and the gateway's answer, so
    // no QR code was shown) once their window and the pending age have passed.
    let mut expiring = order_status::pending_expired_before(
        &state.store.read,
        &tables,
        &timestamp(&now),
        EXPIRY_BATCH_MAX,
    )
    .await?;
    let abandoned = chrono::Duration::from_std(settings.pending_age)
        .ok()
        .and_then(|age| now.checked_sub_signed(ledger::ORDER_PAYMENT_WINDOW + age));
    if let Some(before) = abandoned {
        expiring.extend(
            order_status::created_without_charge_before(
                &state.store.read,
                &tables,
                &timestamp(&before),
                EXPIRY_BATCH_MAX,
            )
            .await?,
        );
    }
    let expiring_ids: HashSet<String> = expiring.iter().map(|row| row.order_id.clone()).collect();

    // 1. Pending too long: the webhook may have been lost. Each order is checked when due:
    //    never-checked first, then after a growing wait, so a flood of abandoned orders
    //    cannot starve a real payment. One also past expiry is left to its expiry, which
    //    asks the gateway too.
    reconcile_schedule::forget_settled(&state.store.read).await?;
    let stale = match cutoff {
        Some(before) => {
            reconcile_schedule::due(&state.store.read, before, now, settings.pending_batch).await?
        }
        None => Vec::new(),
    };
    report.more_due = i64::try_from(stale.len()).unwrap_or(i64::MAX) >= settings.pending_batch;
    for row in stale {
        if !expiring_ids.contains(&row.order_id) {
            reconcile(state, &row, Due::LookUp, now, &request_id, &mut report).await;
        }
        reconcile_schedule::checked(&state.store.read, &row.order_id, now, settings.pending_age)
            .await?;
    }

    // 2. Past expiry: closed at the gateway, then expired, unless the gateway was paid.
    for row in expiring {
        reconcile(state, &row, Due::Expire, now, &request_id, &mut report).await;
    }

    // 3. Refunds still pending: their notice was lost, or the gateway (Alipay) sends none we
    //    act on, or the gateway's answer was never written down.
    if let Some(before) = cutoff {
        let orders = sqlx::query(&format!(
            "SELECT order_id FROM {} WHERE refund_pending_minor > 0 AND updated_at < $1 \
             ORDER BY updated_at LIMIT $2",
            tables.order_status
        ))
        .bind(timestamp(&before))
        .bind(PENDING_BATCH_MAX)
        .fetch_all(&state.store.read)
        .await?;
        for row in orders {
            let order_id: String = row.try_get("order_id")?;
            let request = ReconcileRefunds {
                order_id: order_id.clone(),
                unsent_before: before,
                now,
                request_id: request_id.clone(),
            };
            match ledger::reconcile_refunds(state, request).await {
                Ok(done) => count_refunds(&mut report, done),
                Err(error) => {
                    report.failed += 1;
                    tracing::warn!(order_id, %error, "could not reconcile the order's refunds");
                }
            }
        }
    }

    // 4. Gateway events no order took.
    report.unsettled = unsettled_events(state).await?;
    Ok(report)
}

/// Hands one order to the use case and counts what it did.
async fn reconcile(
    state: &AppState,
    row: &OrderStatusRow,
    due: Due,
    now: DateTime<Utc>,
    request_id: &str,
    report: &mut Report,
) {
    report.checked += 1;
    let request = ReconcileOrder::from_view(row, due, now, request_id);
    match ledger::reconcile_order(state, request).await {
        Ok(Reconciled::Checked(check)) => match check {
            PaymentCheck::Unpaid => {}
            PaymentCheck::Paid(recorded) => count_payment(report, recorded),
            PaymentCheck::GatewayUnavailable => report.gateway_errors += 1,
        },
        Ok(Reconciled::Expiry(expiry)) => match expiry {
            Expiry::Expired {
                charge_closed,
                payment,
                ..
            } => {
                report.expired += 1;
                report.charges_closed += usize::from(charge_closed);
                if let Some(recorded) = payment {
                    count_payment(report, recorded);
                }
            }
            Expiry::PaidMeanwhile(recorded) => count_payment(report, recorded),
            Expiry::GatewayUnavailable => report.gateway_errors += 1,
            Expiry::AlreadyClosed | Expiry::NotYetDue => {}
        },
        Err(error) => {
            report.failed += 1;
            tracing::warn!(order_id = %row.order_id, %error, "reconciling an order failed");
        }
    }
}

fn count_payment(report: &mut Report, recorded: PaymentRecorded) {
    match recorded {
        PaymentRecorded::Confirmed => report.confirmed += 1,
        PaymentRecorded::Flagged => report.flagged += 1,
        PaymentRecorded::Failed => report.failed += 1,
        PaymentRecorded::AlreadyRecorded | PaymentRecorded::NotSettled => {}
    }
}

fn count_refunds(report: &mut Report, done: RefundsReconciled) {
    report.refunds_settled += done.settled;
    report.refunds_failed += done.never_sent;
    report.gateway_errors += done.gateway_errors;
    report.failed += done.failed;
}

async fn unsettled_events(state: &AppState) -> Result<Vec<UnsettledEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT provider, event_id, event_type, outcome, received_at FROM gateway_events \
         WHERE outcome IN ('unmatched', 'deferred') ORDER BY received_at DESC LIMIT $1",
    )
    .bind(UNSETTLED_LIST_MAX)
    .fetch_all(&state.store.read)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(UnsettledEvent {
                provider: row.try_get("provider")?,
                event_id: row.try_get("event_id")?,
                event_type: row.try_get("event_type")?,
                outcome: row.try_get("outcome")?,
                received_at: row.try_get("received_at")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_report_prints_its_counts_and_events() {
        let report = Report {
            checked: 3,
            confirmed: 1,
            expired: 1,
            unsettled: vec![UnsettledEvent {
                provider: "pingpp".to_owned(),
                event_id: "evt_1".to_owned(),
                event_type: "charge.succeeded".to_owned(),
                outcome: "unmatched".to_owned(),
                received_at: "2026-11-25T12:00:00.000000Z".to_owned(),
            }],
            ..Report::default()
        };
        let text = report.to_string();
        assert!(text.contains("3 orders checked, 1 payments confirmed, 0 flagged for review"));
        assert!(text.contains("1 orders expired"));
        assert!(text.contains("evt_1"));
        assert!(Report::skipped().to_string().contains("skipped"));
    }
}
