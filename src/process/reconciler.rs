//! The reconciler: webhooks get lost, so the ledger asks the gateway itself. Orders pending
//! for too long are looked up at the gateway and settled exactly as their webhook would have
//! settled them; orders past their expiry that the gateway does not report as paid are
//! expired; gateway events no order took are listed for the people who settle them.
//!
//! However many instances run, one pass runs at a time: on PostgreSQL under a session advisory
//! lock, on SQLite under a lease row (one process owns an SQLite file in practice, but a CLI
//! pass may run beside the server).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use aggregates::order::RefundStatus;
use aggregates::{Channel, ChargeId, GatewayEventId, IdError, Order, OrderCommand, OrderError};
use chrono::{DateTime, Utc};
use cqrs_es::AggregateError;
use projections::order_status::{self, OrderStatusRow};
use projections::schema::timestamp;
use projections::Tables;
use sha2::{Digest, Sha256};
use sqlx::any::Any;
use sqlx::pool::PoolConnection;
use sqlx::Row;

use super::reconcile_schedule;
use super::settlement::{self, Outcome};
use crate::state::AppState;
use crate::store::load;
use crate::store::{Actor, EventMetadata, Source};
use gateways::alipay::wire::sub_codes::TRADE_NOT_EXIST;
use gateways::{
    gateway_refund_id_for_refund_no, refund_no_for, GatewayError, GatewayEvent, RetrievedCharge,
};

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
/// Prefix of the event id a reconciled confirmation carries in place of a webhook's.
const RECONCILED_EVENT_PREFIX: &str = "evt_reconciled_";
/// GatewayEventId's length limit.
const GATEWAY_EVENT_ID_CHARS_MAX: usize = 64;

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
    /// Orders looked up at the gateway (or, without a charge, closed without asking).
    pub checked: usize,
    /// Orders paid from the gateway's answer.
    pub confirmed: usize,
    /// Money the gateway reported that was recorded but did not pay its order (a wrong
    /// amount, or after the order closed): flagged for review, as its webhook would have been.
    pub flagged: usize,
    /// Orders closed as expired.
    pub expired: usize,
    /// Pending refunds settled from the gateway's answer.
    pub refunds_settled: usize,
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
            || self.refunds_settled > 0
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
             {} orders expired, {} refunds settled, {} gateway errors, {} failed",
            self.checked,
            self.confirmed,
            self.flagged,
            self.expired,
            self.refunds_settled,
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

/// What the gateway says about an order's charge.
enum Lookup {
    /// Paid, as reported by the named provider (the inbox records it with the payment).
    Paid(Box<RetrievedCharge>, &'static str),
    Unpaid,
    Unknown,
}

async fn pass(
    state: &AppState,
    settings: &ReconcilerSettings,
    now: DateTime<Utc>,
) -> Result<Report, ReconcileError> {
    let tables = Tables::live();
    let request_id = format!("reconciler-{}", uuid::Uuid::new_v4().simple());
    let mut report = Report::default();
    // Orders checked in this pass, and whether closing them is safe should they be past expiry.
    let mut closable: HashMap<String, bool> = HashMap::new();

    // 1. Pending too long: the webhook may have been lost.
    let cutoff = chrono::Duration::from_std(settings.pending_age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age));
    //    Each order is checked when due: never-checked first, then after a growing wait, so a
    //    flood of abandoned orders cannot starve a real payment.
    reconcile_schedule::forget_settled(&state.store.read).await?;
    let stale = match cutoff {
        Some(before) => {
            reconcile_schedule::due(&state.store.read, before, now, settings.pending_batch).await?
        }
        None => Vec::new(),
    };
    report.more_due = i64::try_from(stale.len()).unwrap_or(i64::MAX) >= settings.pending_batch;
    for row in stale {
        let may_close = check(state, &row, &request_id, &mut report).await;
        closable.insert(row.order_id.clone(), may_close);
        reconcile_schedule::checked(&state.store.read, &row.order_id, now, settings.pending_age)
            .await?;
    }

    // 2. Past expiry: close the order once the gateway's money (if any) is in the ledger. An
    //    order the money paid is refused by the aggregate, so only unpaid orders close; one
    //    paid the wrong amount closes too, its money staying flagged for review. The QR code
    //    stays payable at the gateway until its own expiry (which we set to ours); money
    //    arriving after this is kept as a late payment owed back.
    let expired = order_status::pending_expired_before(
        &state.store.read,
        &tables,
        &timestamp(&now),
        EXPIRY_BATCH_MAX,
    )
    .await?;
    for row in expired {
        let may_close = match closable.get(&row.order_id) {
            Some(may_close) => *may_close,
            None => check(state, &row, &request_id, &mut report).await,
        };
        if may_close {
            expire(state, &row, now, &request_id, &mut report).await;
        }
    }

    // 3. Orders that never got a charge: the process stopped between recording the order and
    //    the gateway's answer. No QR code was shown, so nothing can pay them; close them once
    //    their payment window has passed.
    let abandoned = chrono::Duration::from_std(settings.pending_age)
        .ok()
        .and_then(|age| now.checked_sub_signed(crate::ledger::ORDER_PAYMENT_WINDOW + age));
    if let Some(before) = abandoned {
        let rows = order_status::created_without_charge_before(
            &state.store.read,
            &tables,
            &timestamp(&before),
            EXPIRY_BATCH_MAX,
        )
        .await?;
        for row in rows {
            report.checked += 1;
            expire(state, &row, now, &request_id, &mut report).await;
        }
    }

    // 4. Refunds still pending: their notice was lost, or the gateway (Alipay) sends none we
    //    act on. Each is settled from the gateway's answer, as its notice would have been.
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
            look_up_refunds(state, &order_id, &request_id, &mut report).await;
        }
    }

    // 5. Gateway events no order took.
    report.unsettled = unsettled_events(state).await?;
    Ok(report)
}

/// Asks the gateway about each pending refund of the order and settles those it reports
/// done. A refund whose gateway id was never recorded is asked for by our refund number,
/// which is how Alipay and WeChat Pay know it.
async fn look_up_refunds(state: &AppState, order_id: &str, request_id: &str, report: &mut Report) {
    let order = match state.store.read.acquire().await {
        Ok(mut connection) => load::load::<Order>(&mut connection, order_id).await,
        Err(error) => {
            report.failed += 1;
            tracing::warn!(order_id, %error, "could not read the order");
            return;
        }
    };
    let order = match order {
        Ok(loaded) => loaded.state,
        Err(error) => {
            report.failed += 1;
            tracing::warn!(order_id, %error, "could not load the order");
            return;
        }
    };
    let (Some(channel), Some(charge_id)) = (order.channel(), order.charge_id().cloned()) else {
        return;
    };
    let Ok(gateway) = state.gateway_for(channel) else {
        report.gateway_errors += 1;
        return;
    };
    let pending = order
        .refunds()
        .iter()
        .filter(|refund| refund.status == RefundStatus::Pending);
    for refund in pending {
        let gateway_refund_id = match &refund.gateway_refund_id {
            Some(id) => id.clone(),
            None => match gateway_refund_id_for_refund_no(&refund_no_for(&refund.refund_id)) {
                Some(id) => id,
                None => continue,
            },
        };
        let answer = match gateway
            .retrieve_refund(&charge_id, &gateway_refund_id)
            .await
        {
            Ok(answer) => answer,
            Err(error) => {
                report.gateway_errors += 1;
                tracing::warn!(order_id, code = error.code(), %error, "could not look the refund up");
                continue;
            }
        };
        let mut facts = answer.facts;
        // The answer may not carry our id back; the refund asked about is ours.
        facts.refund_id = Some(refund.refund_id);
        match settlement::settle_refund_answer(
            state,
            gateway.provider(),
            answer.state,
            facts,
            Some(&answer.answer),
            Source::Reconciler,
            request_id,
        )
        .await
        {
            Ok(Some(settled)) if settled.outcome == Outcome::Applied => report.refunds_settled += 1,
            Ok(_) => {}
            Err(error) => {
                report.failed += 1;
                tracing::warn!(order_id, %error, "recording a refund failed");
            }
        }
    }
}

/// Asks the gateway about the order's charge and records a payment it reports. True when the
/// ledger now holds whatever the gateway knows (nothing paid, or the payment recorded), so the
/// order may be closed if it is past expiry; false when that is not known yet. Closing an
/// order whose payment we have not recorded would turn a good payment into one owed back.
async fn check(
    state: &AppState,
    row: &OrderStatusRow,
    request_id: &str,
    report: &mut Report,
) -> bool {
    report.checked += 1;
    match look_up(state, row).await {
        Lookup::Paid(charge, provider) => {
            settle_paid(state, row, *charge, provider, request_id, report).await
        }
        Lookup::Unpaid => true,
        Lookup::Unknown => {
            report.gateway_errors += 1;
            false
        }
    }
}

async fn look_up(state: &AppState, row: &OrderStatusRow) -> Lookup {
    let Some(charge_id) = row
        .charge_id
        .as_deref()
        .and_then(|id| ChargeId::parse(id).ok())
    else {
        return Lookup::Unpaid;
    };
    let Some(gateway) = gateway_of(state, row) else {
        return Lookup::Unknown;
    };
    match gateway.retrieve_charge(&charge_id).await {
        Ok(RetrievedCharge { charge, .. }) if charge.order_no != order_no_of(row) => {
            tracing::warn!(
                order_id = %row.order_id,
                charge_id = %charge_id,
                order_no = %charge.order_no,
                "the gateway reports the charge for another order; left alone"
            );
            Lookup::Unknown
        }
        Ok(retrieved) if retrieved.charge.paid => {
            Lookup::Paid(Box::new(retrieved), gateway.provider())
        }
        Ok(_) => Lookup::Unpaid,
        // Alipay only opens a trade once the buyer scans the QR code: a trade it does not
        // know is one nobody has paid yet.
        Err(GatewayError::Rejected {
            code: Some(code), ..
        }) if code == TRADE_NOT_EXIST => Lookup::Unpaid,
        Err(error) => {
            tracing::warn!(
                order_id = %row.order_id,
                charge_id = %charge_id,
                code = error.code(),
                %error,
                "could not look the charge up; trying again next pass"
            );
            Lookup::Unknown
        }
    }
}

/// The order number the gateway knows the row's order by.
fn order_no_of(row: &OrderStatusRow) -> String {
    row.order_id.replace('-', "")
}

/// Settles a charge the gateway reports paid, as its `charge.succeeded` webhook would. True
/// when the payment is in the ledger (now or already).
async fn settle_paid(
    state: &AppState,
    row: &OrderStatusRow,
    RetrievedCharge { charge, answer }: RetrievedCharge,
    provider: &str,
    request_id: &str,
    report: &mut Report,
) -> bool {
    let event_id = match reconciled_event_id(&charge.charge_id) {
        Ok(event_id) => event_id,
        Err(error) => {
            report.failed += 1;
            tracing::warn!(order_id = %row.order_id, %error, "no event id for the charge");
            return false;
        }
    };
    let event = GatewayEvent::ChargeSucceeded { event_id, charge };
    match settlement::settle(
        state,
        provider,
        &event,
        &settlement::Evidence::answer(&answer),
        Source::Reconciler,
        request_id,
    )
    .await
    {
        Ok(settled) => match settled.outcome {
            Outcome::Applied => {
                if settled
                    .events
                    .iter()
                    .any(|event| event.event_type == "PaymentConfirmed")
                {
                    report.confirmed += 1;
                } else {
                    report.flagged += 1;
                }
                tracing::info!(order_id = %row.order_id, "payment recorded from the gateway");
                true
            }
            Outcome::Duplicate => true,
            outcome @ (Outcome::Unmatched | Outcome::Ignored | Outcome::Deferred) => {
                tracing::warn!(
                    order_id = %row.order_id,
                    outcome = outcome.as_str(),
                    "a paid charge did not settle its order"
                );
                false
            }
        },
        Err(error) => {
            report.failed += 1;
            tracing::warn!(order_id = %row.order_id, %error, "recording a payment failed");
            false
        }
    }
}

/// The gateway that created the order's charge: its channel's.
fn gateway_of<'a>(
    state: &'a AppState,
    row: &OrderStatusRow,
) -> Option<&'a std::sync::Arc<dyn gateways::PaymentGateway>> {
    let gateway = row
        .channel
        .parse::<Channel>()
        .map_err(|error| error.to_string())
        .and_then(|channel| {
            state
                .gateway_for(channel)
                .map_err(|error| error.to_string())
        });
    match gateway {
        Ok(gateway) => Some(gateway),
        Err(error) => {
            tracing::warn!(order_id = %row.order_id, %error, "no gateway for the order");
            None
        }
    }
}

async fn expire(
    state: &AppState,
    row: &OrderStatusRow,
    now: DateTime<Utc>,
    request_id: &str,
    report: &mut Report,
) {
    let metadata = EventMetadata {
        request_id: request_id.to_owned(),
        actor: Actor::System,
        source: Source::Reconciler,
        gateway_event_id: None,
        recorded_at: Utc::now(),
    };
    let command = OrderCommand::Expire { at: now };
    match state
        .orders
        .execute(&row.order_id, command, &metadata)
        .await
    {
        Ok(committed) => {
            if !committed.is_unchanged() {
                report.expired += 1;
            }
        }
        // The order moved on since the view was read (paid, possibly by the payment this
        // pass just recorded; cancelled; expired by another door): nothing to close.
        Err(AggregateError::UserError(
            OrderError::InvalidTransition { .. } | OrderError::NotYetExpired { .. },
        )) => {}
        Err(error) => {
            report.failed += 1;
            tracing::warn!(order_id = %row.order_id, %error, "expiring an order failed");
        }
    }
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

/// The event id a reconciled confirmation of `charge_id` carries: the same for every pass and
/// every instance, so settling it again is recognised as a duplicate. A charge id too long to
/// fit is replaced by a digest of it.
pub fn reconciled_event_id(charge_id: &ChargeId) -> Result<GatewayEventId, IdError> {
    let suffix = charge_id
        .as_str()
        .strip_prefix("ch_")
        .unwrap_or(charge_id.as_str());
    let text = format!("{RECONCILED_EVENT_PREFIX}{suffix}");
    let text = if text.len() <= GATEWAY_EVENT_ID_CHARS_MAX {
        text
    } else {
        let digest = Sha256::digest(charge_id.as_str().as_bytes());
        let mut hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        hex.truncate(GATEWAY_EVENT_ID_CHARS_MAX - RECONCILED_EVENT_PREFIX.len());
        format!("{RECONCILED_EVENT_PREFIX}{hex}")
    };
    GatewayEventId::parse(&text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reconciled_event_ids_are_stable_and_valid() {
        let charge = ChargeId::parse("ch_Xsr7u35O3m1Gw4ed2ODmi4Lw").unwrap();
        let id = reconciled_event_id(&charge).unwrap();
        assert_eq!(id.as_str(), "evt_reconciled_Xsr7u35O3m1Gw4ed2ODmi4Lw");
        assert_eq!(reconciled_event_id(&charge).unwrap(), id);
    }

    #[test]
    fn long_charge_ids_are_digested_to_fit() {
        let long = format!("ch_{}", "a".repeat(61));
        let other = format!("ch_{}b", "a".repeat(60));
        let first = reconciled_event_id(&ChargeId::parse(&long).unwrap()).unwrap();
        let second = reconciled_event_id(&ChargeId::parse(&other).unwrap()).unwrap();
        assert_eq!(first.as_str().len(), GATEWAY_EVENT_ID_CHARS_MAX);
        assert!(first.as_str().starts_with(RECONCILED_EVENT_PREFIX));
        assert_ne!(first, second);
    }

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
