//! Money the gateway reports when the ledger asks (a lost webhook, a charge found paid when
//! closing it): looked up, then settled exactly as its `charge.succeeded` webhook would have
//! been, through the one settlement path every door uses.

use aggregates::{ChargeId, GatewayEventId, IdError};
use gateways::alipay::wire::sub_codes::TRADE_NOT_EXIST;
use gateways::{GatewayError, GatewayEvent, PaymentGateway, RetrievedCharge};
use sha2::{Digest, Sha256};

use super::settle::{self, Outcome};
use crate::state::AppState;
use crate::store::Source;

/// Prefix of the event id a reconciled confirmation carries in place of a webhook's.
const RECONCILED_EVENT_PREFIX: &str = "evt_reconciled_";
/// GatewayEventId's length limit.
const GATEWAY_EVENT_ID_CHARS_MAX: usize = 64;

/// What the gateway says about an order's charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeLookup {
    /// Paid, with the gateway's answer that says so (kept as the payment's evidence).
    Paid(Box<RetrievedCharge>),
    Unpaid,
    /// The gateway could not tell (unreachable, or it answered about another order).
    Unknown,
}

/// What recording a payment the gateway reported did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentRecorded {
    /// The order is paid by it.
    Confirmed,
    /// Recorded, but it did not pay the order (a wrong amount, or after the order closed):
    /// flagged for review, as its webhook would have been.
    Flagged,
    /// The ledger already held it (its webhook came, or an earlier pass recorded it).
    AlreadyRecorded,
    /// The settlement took it but no order did (unmatched, deferred): not in the ledger.
    NotSettled,
    /// Writing it failed; try again next pass.
    Failed,
}

impl PaymentRecorded {
    /// Whether the ledger now holds what the gateway knows, so the order may be closed.
    pub fn is_in_ledger(self) -> bool {
        matches!(
            self,
            Self::Confirmed | Self::Flagged | Self::AlreadyRecorded
        )
    }
}

/// Asks `gateway` about the order's charge. A charge reported for another order number is
/// left alone: settling it here would pay the wrong order.
pub async fn look_up_charge(
    gateway: &dyn PaymentGateway,
    order_id: &str,
    charge_id: &ChargeId,
) -> ChargeLookup {
    match gateway.retrieve_charge(charge_id).await {
        Ok(RetrievedCharge { charge, .. }) if charge.order_no != order_id.replace('-', "") => {
            tracing::warn!(
                order_id,
                charge_id = %charge_id,
                order_no = %charge.order_no,
                "the gateway reports the charge for another order; left alone"
            );
            ChargeLookup::Unknown
        }
        Ok(retrieved) if retrieved.charge.paid => ChargeLookup::Paid(Box::new(retrieved)),
        Ok(_) => ChargeLookup::Unpaid,
        // Alipay only opens a trade once the buyer scans the QR code: a trade it does not
        // know is one nobody has paid yet.
        Err(GatewayError::Rejected {
            code: Some(code), ..
        }) if code == TRADE_NOT_EXIST => ChargeLookup::Unpaid,
        Err(error) => {
            tracing::warn!(
                order_id,
                charge_id = %charge_id,
                code = error.code(),
                %error,
                "could not look the charge up; trying again next pass"
            );
            ChargeLookup::Unknown
        }
    }
}

/// Settles a charge the gateway reports paid, as its `charge.succeeded` webhook would, under
/// an event id that is the same on every pass (so a repeat is a duplicate).
pub async fn record_reported_payment(
    state: &AppState,
    order_id: &str,
    RetrievedCharge { charge, answer }: RetrievedCharge,
    provider: &str,
    request_id: &str,
) -> PaymentRecorded {
    let event_id = match reconciled_event_id(&charge.charge_id) {
        Ok(event_id) => event_id,
        Err(error) => {
            tracing::warn!(order_id, %error, "no event id for the charge");
            return PaymentRecorded::Failed;
        }
    };
    let event = GatewayEvent::ChargeSucceeded { event_id, charge };
    let settled = settle::settle(
        state,
        provider,
        &event,
        &settle::Evidence::answer(&answer),
        Source::Reconciler,
        request_id,
    )
    .await;
    match settled {
        Ok(settled) => match settled.outcome {
            Outcome::Applied => {
                tracing::info!(order_id, "payment recorded from the gateway");
                if settled
                    .events
                    .iter()
                    .any(|event| event.event_type == "PaymentConfirmed")
                {
                    PaymentRecorded::Confirmed
                } else {
                    PaymentRecorded::Flagged
                }
            }
            Outcome::Duplicate => PaymentRecorded::AlreadyRecorded,
            outcome @ (Outcome::Unmatched | Outcome::Ignored | Outcome::Deferred) => {
                tracing::warn!(
                    order_id,
                    outcome = outcome.as_str(),
                    "a paid charge did not settle its order"
                );
                PaymentRecorded::NotSettled
            }
        },
        Err(error) => {
            tracing::warn!(order_id, %error, "recording a payment failed");
            PaymentRecorded::Failed
        }
    }
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
    fn only_recorded_money_lets_an_order_close() {
        assert!(PaymentRecorded::Confirmed.is_in_ledger());
        assert!(PaymentRecorded::Flagged.is_in_ledger());
        assert!(PaymentRecorded::AlreadyRecorded.is_in_ledger());
        assert!(!PaymentRecorded::NotSettled.is_in_ledger());
        assert!(!PaymentRecorded::Failed.is_in_ledger());
    }
}
