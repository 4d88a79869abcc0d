//! Expiring an order whose payment window has passed. The charge is closed at the gateway
//! first, so the QR code stops taking money, and only then is `OrderExpired` appended: a
//! crash between the two leaves the order pending, and the next pass closes again (closing a
//! closed charge is harmless at every gateway) and appends. A gateway that answers "already
//! paid" gets its payment recorded instead, through the same settlement as a webhook.

use aggregates::{Order, OrderCommand, OrderError};
use chrono::{DateTime, Utc};
use cqrs_es::AggregateError;
use gateways::CloseOutcome;

use super::gateway_payment::{self, ChargeLookup, PaymentRecorded};
use super::LedgerError;
use crate::state::AppState;
use crate::store::load;
use crate::store::EventMetadata;

/// A request to close an order whose payment window has passed.
#[derive(Debug, Clone)]
pub struct ExpireOrder {
    pub order_id: String,
    /// The time the expiry is judged against and recorded at.
    pub now: DateTime<Utc>,
    pub request_id: String,
}

/// What expiring an order did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// `OrderExpired` is in the log at `position`. `charge_closed`: the gateway closed the
    /// charge now (false when there was no charge, or the gateway did not know it).
    /// `payment`: money the gateway had taken and the ledger recorded on the way (a wrong
    /// amount, flagged; the order still closes).
    Expired {
        charge_closed: bool,
        payment: Option<PaymentRecorded>,
        position: i64,
    },
    /// Paid, refunded, or already closed: nothing to expire.
    AlreadyClosed,
    /// Its payment window has not passed at `now`.
    NotYetDue,
    /// The gateway had taken the money before it saw the close: the payment is recorded (as
    /// said) instead of an expiry. Unless it is in the ledger, the next pass tries again.
    PaidMeanwhile(PaymentRecorded),
    /// The gateway could not be asked or did not answer: left pending for the next pass.
    GatewayUnavailable,
}

pub async fn expire_order(state: &AppState, request: ExpireOrder) -> Result<Expiry, LedgerError> {
    let order = {
        let mut connection = state.store.read.acquire().await?;
        load::load::<Order>(&mut connection, &request.order_id)
            .await?
            .state
    };
    // Decided before the gateway is asked, so a charge is never closed for an order the
    // domain would not expire (paid meanwhile, or not due yet).
    match order.decide(OrderCommand::Expire { at: request.now }) {
        Ok(_) => {}
        Err(OrderError::InvalidTransition { .. }) => return Ok(Expiry::AlreadyClosed),
        Err(OrderError::NotYetExpired { .. }) => return Ok(Expiry::NotYetDue),
        Err(error) => return Err(AggregateError::UserError(error).into()),
    }
    // An order without a charge (the process stopped before the gateway answered) showed no
    // QR code: nothing to close.
    let mut charge_closed = false;
    let mut payment = None;
    if let (Some(channel), Some(charge_id)) = (order.channel(), order.charge_id()) {
        let gateway = match state.gateway_for(channel) {
            Ok(gateway) => gateway,
            Err(error) => {
                tracing::warn!(order_id = %request.order_id, %error, "no gateway for the order");
                return Ok(Expiry::GatewayUnavailable);
            }
        };
        match gateway.close_charge(charge_id).await {
            Ok(CloseOutcome::Closed) => charge_closed = true,
            // Our expiry is the code's own at the gateway: a charge it does not know by now
            // (an Alipay trade nobody scanned) can no longer be paid.
            Ok(CloseOutcome::NotFound) => {}
            Ok(CloseOutcome::AlreadyPaid) => {
                let charge = match gateway_payment::look_up_charge(
                    gateway.as_ref(),
                    &request.order_id,
                    charge_id,
                )
                .await
                {
                    ChargeLookup::Paid(charge) => charge,
                    ChargeLookup::Unpaid | ChargeLookup::Unknown => {
                        return Ok(Expiry::GatewayUnavailable)
                    }
                };
                let recorded = gateway_payment::record_reported_payment(
                    state,
                    &request.order_id,
                    *charge,
                    gateway.provider(),
                    &request.request_id,
                )
                .await;
                if !recorded.is_in_ledger() {
                    return Ok(Expiry::PaidMeanwhile(recorded));
                }
                payment = Some(recorded);
            }
            Err(error) => {
                tracing::warn!(
                    order_id = %request.order_id,
                    code = error.code(),
                    %error,
                    "could not close the charge; the order stays pending until the next pass"
                );
                return Ok(Expiry::GatewayUnavailable);
            }
        }
    }
    append_expiry(state, &request, charge_closed, payment).await
}

/// Appends `OrderExpired`; the domain refuses it for an order the recorded payment paid.
async fn append_expiry(
    state: &AppState,
    request: &ExpireOrder,
    charge_closed: bool,
    payment: Option<PaymentRecorded>,
) -> Result<Expiry, LedgerError> {
    let metadata = EventMetadata::reconciler(&request.request_id);
    let command = OrderCommand::Expire { at: request.now };
    match state
        .orders
        .execute(&request.order_id, command, &metadata)
        .await
    {
        Ok(committed) if committed.is_unchanged() => Ok(Expiry::AlreadyClosed),
        Ok(committed) => Ok(Expiry::Expired {
            charge_closed,
            payment,
            position: committed.position().unwrap_or_default(),
        }),
        // The order moved on since it was read: paid (by the money just recorded, or a
        // webhook), cancelled, or expired by another pass.
        Err(AggregateError::UserError(OrderError::InvalidTransition { .. })) => {
            Ok(payment.map_or(Expiry::AlreadyClosed, Expiry::PaidMeanwhile))
        }
        Err(AggregateError::UserError(OrderError::NotYetExpired { .. })) => Ok(Expiry::NotYetDue),
        Err(error) => Err(error.into()),
    }
}
