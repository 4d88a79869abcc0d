//! The record of one refund request, kept on the order so retries and gateway replies can be matched to it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{GatewayRefundId, RefundId};
use crate::money::Money;

/// Where one refund request stands. Only `Pending` can still change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Reserved against the paid amount, waiting for the gateway.
    Pending,
    /// Money went back to the customer.
    Succeeded,
    /// The gateway refused; the reservation was released.
    Failed,
}

/// One refund request as the order saw it. Built only by applying refund events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRecord {
    pub refund_id: RefundId,
    pub amount: Money,
    pub reason: String,
    pub status: RefundStatus,
    pub requested_at: DateTime<Utc>,
    pub gateway_refund_id: Option<GatewayRefundId>,
    pub settled_at: Option<DateTime<Utc>>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
}
