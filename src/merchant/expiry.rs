//! Memberships end on time: a periodic pass records `MembershipExpired` for every membership
//! whose end has passed, and enqueues `membership.expiring` some days before the end.
//!
//! Exactly once however many instances run: the expiry is a command to the member's
//! Subscription, which refuses one before the end and records nothing for a membership that
//! has already expired, and concurrent commands from two processes are serialised by the
//! log (the loser reloads and finds it done). A notice is keyed by the membership's last
//! change, and a delivery by event and endpoint, so a second instance enqueues nothing.

use std::sync::Arc;

use aggregates::{SubscriptionCommand, SubscriptionError};
use chrono::{DateTime, Utc};
use cqrs_es::AggregateError;
use projections::membership::MembershipRow;
use projections::Tables;
use sqlx::Row;
use tokio::sync::Notify;

use super::events::{self, EventType, MerchantEvent, Subject};
use super::settings::MerchantSettings;
use super::{deliveries, endpoints, MerchantError};
use crate::state::AppState;
use crate::store::{Actor, EventMetadata, Source};

/// Memberships handled per pass; the rest wait for the next one.
const PASS_MEMBERS_MAX: i64 = 500;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Members whose expiry this pass recorded.
    pub expired: Vec<String>,
    /// Expiring notices enqueued (deliveries).
    pub notices: usize,
}

/// Runs a pass every `settings.expiry_interval` for as long as the service runs.
pub async fn follow(state: AppState, settings: MerchantSettings, senders: Arc<Notify>) {
    loop {
        match run_pass(&state, &settings, Utc::now()).await {
            Ok(report) => {
                if report.notices > 0 {
                    senders.notify_waiters();
                }
                if !report.expired.is_empty() {
                    tracing::info!(members = report.expired.len(), "memberships expired");
                }
            }
            Err(error) => tracing::error!(%error, "the membership expiry pass failed"),
        }
        tokio::time::sleep(settings.expiry_interval).await;
    }
}

async fn members_where(
    state: &AppState,
    condition: &str,
    bounds: &[String],
) -> Result<Vec<MembershipRow>, MerchantError> {
    let sql = format!(
        "SELECT user_id FROM {m} WHERE status = 'active' AND {condition} \
         ORDER BY ends_at LIMIT {PASS_MEMBERS_MAX}",
        m = Tables::live().membership
    );
    let mut query = sqlx::query(&sql);
    for bound in bounds {
        query = query.bind(bound.clone());
    }
    let mut members = Vec::new();
    for row in query.fetch_all(&state.store.read).await? {
        let user_id: String = row.try_get("user_id")?;
        if let Some(found) =
            projections::membership::find(&state.store.read, &Tables::live(), &user_id).await?
        {
            members.push(found);
        }
    }
    Ok(members)
}

/// One pass as of `now`: expires what is due, then sends the notices that fell due.
pub async fn run_pass(
    state: &AppState,
    settings: &MerchantSettings,
    now: DateTime<Utc>,
) -> Result<ExpiryReport, MerchantError> {
    let mut report = ExpiryReport::default();
    let now_text = projections::schema::timestamp(&now);
    for member in members_where(state, "ends_at <= $1", std::slice::from_ref(&now_text)).await? {
        if expire(state, &member.user_id, now).await? {
            report.expired.push(member.user_id);
        }
    }
    let horizon = projections::schema::timestamp(&(now + settings.expiring_notice));
    let expiring = members_where(
        state,
        "ends_at > $1 AND ends_at <= $2",
        &[now_text, horizon],
    )
    .await?;
    if expiring.is_empty() {
        return Ok(report);
    }
    let targets: Vec<_> = endpoints::active(&state.store.read)
        .await?
        .into_iter()
        .filter(|endpoint| endpoint.wants(EventType::MembershipExpiring.as_str()))
        .collect();
    if targets.is_empty() {
        return Ok(report);
    }
    for member in expiring {
        let id = events::expiring_event_id(member.last_position);
        // Every pass sees the member until the end: build the notice only while some
        // endpoint has not had it.
        let enqueued: i64 = sqlx::query(
            "SELECT CAST(count(*) AS BIGINT) AS n FROM merchant_webhook_deliveries \
             WHERE event_id = $1 AND endpoint_id IN \
               (SELECT id FROM merchant_webhook_endpoints WHERE deleted_at IS NULL)",
        )
        .bind(id.clone())
        .fetch_one(&state.store.read)
        .await?
        .try_get("n")?;
        if usize::try_from(enqueued).unwrap_or(usize::MAX) >= targets.len() {
            continue;
        }
        let subject = Subject::Membership(member.user_id.clone());
        let event = MerchantEvent {
            id,
            event_type: EventType::MembershipExpiring.as_str(),
            created: now.timestamp(),
            position: member.last_position,
            data: events::data(state, &subject)
                .await
                .map_err(|error| MerchantError::Data(error.to_string()))?,
        };
        if event.data.is_none() {
            continue;
        }
        let mut connection = state.store.read.acquire().await?;
        report.notices += deliveries::enqueue(
            &mut connection,
            &targets,
            &event,
            &subject,
            settings.retry.give_up_after,
        )
        .await?;
    }
    Ok(report)
}

/// Records that `user_id`'s membership ended, as of `now`. False when there was nothing to
/// record (already expired, or extended meanwhile).
async fn expire(
    state: &AppState,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, MerchantError> {
    let metadata = EventMetadata {
        request_id: format!("membership-expiry-{user_id}"),
        actor: Actor::System,
        source: Source::Process,
        gateway_event_id: None,
        recorded_at: now,
    };
    match state
        .subscriptions
        .execute(
            user_id,
            SubscriptionCommand::ExpireMembership { at: now },
            &metadata,
        )
        .await
    {
        Ok(committed) => Ok(!committed.is_unchanged()),
        // Renewed between the read and the command: nothing is due.
        Err(AggregateError::UserError(SubscriptionError::NotYetDue { .. })) => Ok(false),
        Err(error) => Err(MerchantError::Data(error.to_string())),
    }
}
