//! Reconciling one order: webhooks get lost, so the ledger asks the gateway itself. An order
//! pending for too long is looked up and a payment the gateway reports is settled as its
//! webhook would have been; an order past its payment window is expired (its charge closed
//! first, see `expire_order`). The reconciler only decides which orders are due.

use aggregates::{Channel, ChargeId};
use chrono::{DateTime, Utc};
use projections::order_status::OrderStatusRow;

use super::expire_order::{expire_order, ExpireOrder, Expiry};
use super::gateway_payment::{self, ChargeLookup, PaymentRecorded};
use super::LedgerError;
use crate::state::AppState;

/// Why the order is being reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Pending long enough that its webhook may have been lost: ask the gateway.
    LookUp,
    /// Past its payment window: close it (unless the gateway was paid).
    Expire,
}

/// One order to reconcile, as the views know it.
#[derive(Debug, Clone)]
pub struct ReconcileOrder {
    pub order_id: String,
    pub channel: String,
    pub charge_id: Option<String>,
    pub due: Due,
    pub now: DateTime<Utc>,
    pub request_id: String,
}

impl ReconcileOrder {
    pub fn from_view(row: &OrderStatusRow, due: Due, now: DateTime<Utc>, request_id: &str) -> Self {
        Self {
            order_id: row.order_id.clone(),
            channel: row.channel.clone(),
            charge_id: row.charge_id.clone(),
            due,
            now,
            request_id: request_id.to_owned(),
        }
    }
}

/// What the gateway's answer about a pending order led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentCheck {
    /// Nothing paid it (or it has no charge to ask about).
    Unpaid,
    /// The gateway reports it paid; recording that went as said.
    Paid(PaymentRecorded),
    /// The gateway could not tell: asked again on a later pass.
    GatewayUnavailable,
}

/// What reconciling one order did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    Checked(PaymentCheck),
    Expiry(Expiry),
}

pub async fn reconcile_order(
    state: &AppState,
    request: ReconcileOrder,
) -> Result<Reconciled, LedgerError> {
    match request.due {
        Due::LookUp => Ok(Reconciled::Checked(check(state, &request).await)),
        Due::Expire => {
            let expiry = expire_order(
                state,
                ExpireOrder {
                    order_id: request.order_id,
                    now: request.now,
                    request_id: request.request_id,
                },
            )
            .await?;
            Ok(Reconciled::Expiry(expiry))
        }
    }
}

/// Asks the gateway about the order's charge and records a payment it reports.
async fn check(state: &AppState, request: &ReconcileOrder) -> PaymentCheck {
    let Some(charge_id) = request
        .charge_id
        .as_deref()
        .and_then(|id| ChargeId::parse(id).ok())
    else {
        return PaymentCheck::Unpaid;
    };
    let gateway = request
        .channel
        .parse::<Channel>()
        .map_err(|error| error.to_string())
        .and_then(|channel| {
            state
                .gateway_for(channel)
                .map_err(|error| error.to_string())
        });
    let gateway = match gateway {
        Ok(gateway) => gateway,
        Err(error) => {
            tracing::warn!(order_id = %request.order_id, %error, "no gateway for the order");
            return PaymentCheck::GatewayUnavailable;
        }
    };
    match gateway_payment::look_up_charge(gateway.as_ref(), &request.order_id, &charge_id).await {
        ChargeLookup::Paid(charge) => PaymentCheck::Paid(
            gateway_payment::record_reported_payment(
                state,
                &request.order_id,
                *charge,
                gateway.provider(),
                &request.request_id,
            )
            .await,
        ),
        ChargeLookup::Unpaid => PaymentCheck::Unpaid,
        ChargeLookup::Unknown => PaymentCheck::GatewayUnavailable,
    }
}
