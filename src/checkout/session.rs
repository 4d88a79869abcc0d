//! The checkout's use cases: open a session for a user, place an order through its link, and
//! decide whether its link may see an order. Orders go through `ledger::place_order` like any
//! other; the session only restricts what its link may do.

use aggregates::{Channel, OrderError, PlanId, UserId};
use chrono::Utc;

use super::store::{self, Session};
use super::{secret, CheckoutError};
use crate::ledger::{self, LedgerError, PlaceOrder, Placed};
use crate::state::AppState;
use crate::store::EventMetadata;

/// Orders (codes) one link may place: a buyer retrying that often is better served by a new
/// checkout, and a leaked link cannot be used to flood the gateway.
pub const SESSION_ORDERS_MAX: i64 = 20;

/// Used only if a configured lifetime could not be expressed (it always can: see settings).
const SESSION_TTL_FALLBACK_SECONDS: i64 = 30 * 60;

/// A merchant's request to open a checkout for `user_id`.
#[derive(Debug, Clone)]
pub struct OpenSession {
    pub user_id: UserId,
    pub plan_id: Option<PlanId>,
    pub channel: Option<Channel>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
}

/// An opened session and the secret its link carries (never stored, shown once).
#[derive(Debug, Clone)]
pub struct Opened {
    pub session: Session,
    pub secret: String,
}

pub async fn open_session(state: &AppState, request: OpenSession) -> Result<Opened, CheckoutError> {
    if let Some(plan_id) = &request.plan_id {
        purchasable(state, plan_id)?;
    }
    for (field, url) in [
        ("success_url", &request.success_url),
        ("cancel_url", &request.cancel_url),
    ] {
        if url
            .as_deref()
            .is_some_and(|url| !state.checkout.allows_redirect(url))
        {
            return Err(CheckoutError::RedirectNotAllowed { field });
        }
    }
    // Settings bound the lifetime to a day, which always converts.
    let ttl = chrono::Duration::from_std(state.checkout.session_ttl)
        .unwrap_or_else(|_| chrono::Duration::seconds(SESSION_TTL_FALLBACK_SECONDS));
    let session = Session {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: request.user_id.as_str().to_owned(),
        plan_id: request.plan_id.map(|plan| plan.as_str().to_owned()),
        channel: request.channel.map(|channel| channel.as_str().to_owned()),
        success_url: request.success_url,
        cancel_url: request.cancel_url,
        expires_at: Utc::now() + ttl,
    };
    let secret = secret::generate()?;
    store::insert(&state.store.read, &session, &secret).await?;
    tracing::info!(session_id = %session.id, user_id = %session.user_id, "checkout opened");
    Ok(Opened { session, secret })
}

fn purchasable(state: &AppState, plan_id: &PlanId) -> Result<(), CheckoutError> {
    let plan = state
        .catalog
        .find(plan_id)
        .ok_or(LedgerError::UnknownPlan)?;
    if plan.is_purchasable() {
        Ok(())
    } else {
        Err(LedgerError::Order(cqrs_es::AggregateError::UserError(
            OrderError::NotPurchasable {
                plan_id: plan_id.clone(),
            },
        ))
        .into())
    }
}

/// The open session `secret` names.
pub async fn open(state: &AppState, secret: &str) -> Result<Session, CheckoutError> {
    let session = store::find_by_secret(&state.store.read, secret)
        .await?
        .ok_or(CheckoutError::SessionNotFound)?;
    if session.is_open_at(Utc::now()) {
        Ok(session)
    } else {
        Err(CheckoutError::SessionExpired)
    }
}

/// What the page asks for: the session's plan and channel, or its own choice where the
/// session leaves one open.
#[derive(Debug, Clone)]
pub struct Choice {
    pub plan_id: Option<String>,
    pub channel: Option<String>,
}

/// Places an order (a new code) through the link `secret`, for its user.
pub async fn order_through(
    state: &AppState,
    secret: &str,
    choice: Choice,
    client_ip: String,
    metadata: impl FnOnce(&Session) -> EventMetadata,
) -> Result<Placed, CheckoutError> {
    let session = open(state, secret).await?;
    let plan = settle(
        session.plan_id.as_deref(),
        choice.plan_id,
        CheckoutError::PlanRequired,
    )?;
    let channel = settle(
        session.channel.as_deref(),
        choice.channel,
        CheckoutError::ChannelRequired,
    )?;
    let request = PlaceOrder {
        user_id: UserId::parse(&session.user_id).map_err(|_| LedgerError::InvalidUser)?,
        plan_id: PlanId::parse(&plan).map_err(|_| LedgerError::UnknownPlan)?,
        channel: channel
            .parse::<Channel>()
            .map_err(|_| CheckoutError::UnknownChannel)?,
        client_ip,
        idempotency_key: None,
        metadata: metadata(&session),
    };
    if !store::take_order_slot(&state.store.read, &session.id, SESSION_ORDERS_MAX).await? {
        return Err(CheckoutError::TooManyOrders(SESSION_ORDERS_MAX));
    }
    let placed = ledger::place_order(state, request).await?;
    let order_id = match &placed {
        Placed::New { order_id, .. }
        | Placed::Replayed { order_id }
        | Placed::AlreadyOpen { order_id } => order_id,
    };
    store::attach_order(&state.store.read, &session.id, order_id).await?;
    Ok(placed)
}

/// The session's value when it fixes one, else the page's choice; a page may not override a
/// value the merchant fixed.
fn settle(
    fixed: Option<&str>,
    chosen: Option<String>,
    missing: CheckoutError,
) -> Result<String, CheckoutError> {
    match (fixed, chosen) {
        (Some(fixed), Some(chosen)) if fixed != chosen => Err(CheckoutError::NotThisCheckout {
            expected: fixed.to_owned(),
        }),
        (Some(fixed), _) => Ok(fixed.to_owned()),
        (None, Some(chosen)) => Ok(chosen),
        (None, None) => Err(missing),
    }
}

/// The open session of `secret`, when it placed `order_id`; any other order is "not found".
pub async fn visible_order(
    state: &AppState,
    secret: &str,
    order_id: &str,
) -> Result<Session, CheckoutError> {
    let session = open(state, secret).await?;
    if store::owns_order(&state.store.read, &session.id, order_id).await? {
        Ok(session)
    } else {
        Err(CheckoutError::OrderNotFound)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_page_fills_in_what_the_merchant_left_open_and_nothing_else() {
        let chosen = |text: &str| Some(text.to_owned());
        assert_eq!(
            settle(Some("pro-monthly"), None, CheckoutError::PlanRequired).unwrap(),
            "pro-monthly"
        );
        assert_eq!(
            settle(None, chosen("pro-yearly"), CheckoutError::PlanRequired).unwrap(),
            "pro-yearly"
        );
        assert!(matches!(
            settle(
                Some("pro-monthly"),
                chosen("pro-yearly"),
                CheckoutError::PlanRequired
            ),
            Err(CheckoutError::NotThisCheckout { .. })
        ));
        assert!(matches!(
            settle(None, None, CheckoutError::ChannelRequired),
            Err(CheckoutError::ChannelRequired)
        ));
    }
}
