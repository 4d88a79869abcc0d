//! The gateway trait. The domain never calls it: the server asks the gateway first and puts
//! the answer (charge id, QR credential, expiry) into a command as data.

use aggregates::{Channel, ChargeId, Money, OrderId};
use chrono::{DateTime, Utc};

/// What we ask a gateway to charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    pub order_id: OrderId,
    pub amount: Money,
    pub channel: Channel,
    pub subject: String,
    pub expires_at: DateTime<Utc>,
}

/// A charge the gateway created: show `qr_code` to the customer until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCharge {
    pub charge_id: ChargeId,
    pub qr_code: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("the payment gateway is unavailable: {0}")]
    Unavailable(String),
    #[error("the payment gateway refused the request: {0}")]
    Refused(String),
}

/// A payment gateway.
#[async_trait::async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Creates a charge for an order; returns its id and QR credential.
    async fn create_charge(&self, request: &ChargeRequest) -> Result<IssuedCharge, GatewayError>;
}
