//! The gateway port. The domain never calls it: the server asks the gateway first and puts the
//! answer (charge id, QR credential, expiry, a verified webhook's facts) into commands as data.

use aggregates::{Channel, ChargeId, GatewayEventId, GatewayRefundId, Money, OrderId, RefundId};
use chrono::{DateTime, Utc};

use crate::pingpp::signature::SignatureError;
use crate::WebhookHeaders;

/// The merchant order number a gateway sees for an order: the order id's 32 hex digits, within
/// every channel's rules (letters and digits, at most 32), and the same on every retry, so a
/// retried create cannot become a second payable order.
pub fn order_no_for(order_id: &OrderId) -> String {
    order_id.as_uuid().simple().to_string()
}

/// The order an order number belongs to, if it is one of ours.
pub fn order_id_from_order_no(order_no: &str) -> Option<OrderId> {
    if order_no.len() != 32 || !order_no.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    uuid::Uuid::parse_str(order_no).ok().map(OrderId::from_uuid)
}

/// What we ask a gateway to charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    pub order_id: OrderId,
    pub amount: Money,
    pub channel: Channel,
    /// Shown to the payer; at most 32 characters.
    pub subject: String,
    /// At most 128 characters.
    pub body: String,
    pub client_ip: String,
    pub expires_at: DateTime<Utc>,
}

/// A charge the gateway created: show `qr_code` to the customer until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCharge {
    pub charge_id: ChargeId,
    pub qr_code: String,
    pub expires_at: DateTime<Utc>,
}

/// A charge as the gateway reports it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeState {
    pub charge_id: ChargeId,
    pub order_no: String,
    pub amount: Money,
    pub paid: bool,
    pub time_paid: Option<DateTime<Utc>>,
    pub transaction_no: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
}

/// What we ask a gateway to refund. Our refund id travels in the refund's metadata so its
/// webhook finds the refund it completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub charge_id: ChargeId,
    pub refund_id: RefundId,
    pub amount: Money,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundState {
    Pending,
    Succeeded,
    Failed,
}

/// A refund the gateway accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedRefund {
    pub gateway_refund_id: GatewayRefundId,
    pub state: RefundState,
}

/// A verified webhook, reduced to the facts the ledger acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    ChargeSucceeded {
        event_id: GatewayEventId,
        charge: ChargeState,
    },
    ChargeFailed {
        event_id: GatewayEventId,
        charge: ChargeState,
    },
    RefundSucceeded {
        event_id: GatewayEventId,
        refund: RefundFacts,
    },
    RefundFailed {
        event_id: GatewayEventId,
        refund: RefundFacts,
    },
    /// A type we do not act on (daily summaries, transfers): acknowledged and kept for audit.
    Other {
        event_id: GatewayEventId,
        event_type: String,
    },
}

impl GatewayEvent {
    pub fn event_id(&self) -> &GatewayEventId {
        match self {
            Self::ChargeSucceeded { event_id, .. }
            | Self::ChargeFailed { event_id, .. }
            | Self::RefundSucceeded { event_id, .. }
            | Self::RefundFailed { event_id, .. }
            | Self::Other { event_id, .. } => event_id,
        }
    }

    pub fn event_type(&self) -> &str {
        match self {
            Self::ChargeSucceeded { .. } => "charge.succeeded",
            Self::ChargeFailed { .. } => "charge.failed",
            Self::RefundSucceeded { .. } => "refund.succeeded",
            Self::RefundFailed { .. } => "refund.failed",
            Self::Other { event_type, .. } => event_type,
        }
    }
}

/// A refund object's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundFacts {
    pub gateway_refund_id: GatewayRefundId,
    pub charge_id: ChargeId,
    pub charge_order_no: Option<String>,
    /// Our id, from the refund's metadata; None for a refund we did not ask for.
    pub refund_id: Option<RefundId>,
    pub amount: Money,
    pub succeeded_at: Option<DateTime<Utc>>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
}

/// Why a webhook was refused before anything was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRejection {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Signed correctly but not an event we can read.
    #[error("the webhook body is not a readable event: {0}")]
    Malformed(String),
}

impl WebhookRejection {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Signature(error) => error.code(),
            Self::Malformed(_) => "webhook.malformed",
        }
    }
}

/// A failed gateway call, typed so the API can answer clearly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("the payment gateway did not answer in time")]
    Timeout,
    #[error("the payment gateway is unreachable: {0}")]
    Unreachable(String),
    #[error("the payment gateway refused our credentials")]
    Authentication,
    #[error("the payment gateway refused the request: {message}")]
    Rejected {
        code: Option<String>,
        message: String,
    },
    #[error("the payment gateway failed: {0}")]
    Upstream(String),
    #[error("the payment gateway answered something we cannot read: {0}")]
    Protocol(String),
}

impl GatewayError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Timeout => "gateway.timeout",
            Self::Unreachable(_) => "gateway.unreachable",
            Self::Authentication => "gateway.authentication",
            Self::Rejected { .. } => "gateway.rejected",
            Self::Upstream(_) => "gateway.upstream_error",
            Self::Protocol(_) => "gateway.protocol_error",
        }
    }
}

/// A payment gateway.
#[async_trait::async_trait]
pub trait PaymentGateway: Send + Sync {
    /// "pingpp", "sandbox", ...: recorded with every webhook we keep.
    fn provider(&self) -> &'static str;

    /// Creates a charge for an order; returns its id and QR credential.
    async fn create_charge(&self, request: &ChargeRequest) -> Result<IssuedCharge, GatewayError>;

    /// The charge as the gateway sees it now (for reconciliation).
    async fn retrieve_charge(&self, charge_id: &ChargeId) -> Result<ChargeState, GatewayError>;

    /// Asks for (part of) a charge back.
    async fn create_refund(&self, request: &RefundRequest) -> Result<IssuedRefund, GatewayError>;

    /// Verifies a webhook over its exact raw bytes, then reads it.
    fn verify_webhook(
        &self,
        headers: &WebhookHeaders,
        body: &[u8],
    ) -> Result<GatewayEvent, WebhookRejection>;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn order_numbers_round_trip_and_fit_every_channel() {
        let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
        let order_no = order_no_for(&order_id);
        assert_eq!(order_no.len(), 32);
        assert!(order_no.bytes().all(|byte| byte.is_ascii_alphanumeric()));
        assert_eq!(order_id_from_order_no(&order_no), Some(order_id));
        assert_eq!(order_id_from_order_no("2015d019f7cf6c0d"), None);
        assert_eq!(order_id_from_order_no("../../etc/passwd"), None);
    }
}
