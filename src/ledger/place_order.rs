//! Placing an order: record it, ask the gateway for a charge, record the charge. Two
//! transactions around the gateway call (ADR 6 says what a crash between them leaves).

use std::sync::Arc;

use aggregates::{Channel, OrderCommand, OrderId, PlanId, UserId};
use chrono::Utc;
use gateways::ChargeRequest;
use projections::Tables;

use super::idempotency::{self, Claim, IdempotencyKey};
use super::LedgerError;
use crate::state::AppState;
use crate::store::{Checked, EventMetadata, Precondition};

/// How long a QR code stays payable.
pub const ORDER_PAYMENT_WINDOW: chrono::Duration = chrono::Duration::minutes(15);
const IDEMPOTENCY_SCOPE: &str = "create_order";

/// A request to buy a plan.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    pub user_id: UserId,
    pub plan_id: PlanId,
    pub channel: Channel,
    /// The payer's address, for the gateway's risk checks.
    pub client_ip: String,
    pub idempotency_key: Option<IdempotencyKey>,
    pub metadata: EventMetadata,
}

/// What placing an order did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// A new order, charged, its last event at `position`.
    New { order_id: String, position: i64 },
    /// The same request came before with this idempotency key: that request's order.
    Replayed { order_id: String },
    /// The user already holds as many open orders as allowed, one of them for this plan and
    /// channel: that order (its QR code is still payable) rather than a new one.
    AlreadyOpen { order_id: String },
}

pub async fn place_order(state: &AppState, request: PlaceOrder) -> Result<Placed, LedgerError> {
    // Every creation request counts, whatever becomes of it.
    state
        .quota
        .admit(request.user_id.as_ref(), std::time::Instant::now())
        .map_err(|retry_after| LedgerError::RateLimited { retry_after })?;
    let plan = state
        .catalog
        .find(&request.plan_id)
        .cloned()
        .ok_or(LedgerError::UnknownPlan)?;
    if plan.is_purchasable() && !state.limits.allows(plan.price.amount_minor()) {
        return Err(LedgerError::AmountOutOfRange {
            min_minor: state.limits.min_minor,
            max_minor: state.limits.max_minor,
        });
    }
    // The channel's gateway charges the order (and later refunds, looks up and closes it).
    let gateway = state.gateway_for(request.channel)?;
    let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
    let id = order_id.to_string();
    let key = request.idempotency_key.as_ref();
    let user = request.user_id.as_ref();
    let request_hash = idempotency::hash(&[plan.id.as_str(), request.channel.as_str()]);
    if let Claim::Replay(existing) = idempotency::claim(
        &state.store.read,
        key,
        user,
        IDEMPOTENCY_SCOPE,
        &request_hash,
        &id,
    )
    .await?
    {
        return Ok(Placed::Replayed { order_id: existing });
    }

    let now = Utc::now();
    let create = OrderCommand::Create {
        order_id,
        user_id: request.user_id.clone(),
        plan: plan.clone(),
        channel: request.channel,
        at: now,
    };
    let open_max = state.quota.settings.open_max;
    let created = state
        .orders
        .execute_checked(
            &id,
            create,
            &request.metadata,
            open_orders_cap(&request, open_max, now),
        )
        .await;
    let stopped = match created {
        Ok(Checked::Committed(_)) => None,
        Ok(Checked::Stopped(at_cap)) => Some(match at_cap {
            AtCap::SameOrder(order_id) => Ok(Placed::AlreadyOpen { order_id }),
            AtCap::Full => Err(LedgerError::TooManyOpenOrders { open_max }),
        }),
        Err(error) => Some(Err(error.into())),
    };
    if let Some(answer) = stopped {
        idempotency::release(&state.store.read, key, user, IDEMPOTENCY_SCOPE).await;
        return answer;
    }
    let charge = ChargeRequest {
        order_id,
        amount: plan.price,
        channel: request.channel,
        subject: plan.name.clone(),
        body: format!("{} membership", plan.name),
        client_ip: request.client_ip,
        expires_at: now + ORDER_PAYMENT_WINDOW,
    };
    let issued = match gateway.create_charge(&charge).await {
        Ok(issued) => issued,
        Err(error) => {
            // No charge exists, so nothing can be paid: close the order rather than leave it
            // waiting for money that cannot come.
            tracing::warn!(order_id = %id, code = error.code(), "charge creation failed");
            let cancel = OrderCommand::Cancel {
                reason: format!("the gateway could not create a charge: {}", error.code()),
                at: Utc::now(),
            };
            state.orders.execute(&id, cancel, &request.metadata).await?;
            return Err(error.into());
        }
    };
    let charged = state
        .orders
        .execute(
            &id,
            OrderCommand::RequestCharge {
                charge_id: issued.charge_id,
                qr_code: issued.qr_code,
                expires_at: issued.expires_at,
                at: Utc::now(),
            },
            &request.metadata,
        )
        .await?;
    tracing::info!(order_id = %id, user_id = %user, plan = %plan.id, "order created");
    let position = charged.position().unwrap_or_default();
    Ok(Placed::New {
        order_id: id,
        position,
    })
}

/// Why the open-orders cap stopped a new order.
enum AtCap {
    /// The user's open order for the same plan and channel: its QR code is still payable.
    SameOrder(String),
    /// As many open orders as allowed, none for this plan and channel.
    Full,
}

/// The cap on a user's open orders, checked in the transaction that creates the order, so
/// it costs no transaction of its own.
fn open_orders_cap(
    request: &PlaceOrder,
    open_max: u32,
    now: chrono::DateTime<Utc>,
) -> Precondition<AtCap> {
    let user = request.user_id.to_string();
    let plan = request.plan_id.to_string();
    let channel = request.channel.as_str();
    let now = projections::schema::timestamp(&now);
    Arc::new(move |connection| {
        let (user, plan, now) = (user.clone(), plan.clone(), now.clone());
        Box::pin(async move {
            let open = projections::order_status::open_for_user(
                connection,
                &Tables::live(),
                &user,
                &now,
                i64::from(open_max),
            )
            .await?;
            if open.len() < usize::try_from(open_max).unwrap_or(usize::MAX) {
                return Ok(None);
            }
            let same = open
                .into_iter()
                .find(|row| row.plan_id == plan && row.channel == channel);
            Ok(Some(match same {
                Some(row) => AtCap::SameOrder(row.order_id),
                None => AtCap::Full,
            }))
        })
    })
}
