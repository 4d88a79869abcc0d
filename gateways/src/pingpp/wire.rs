//! Ping++'s JSON objects as they travel over the wire. Fields are parsed by name (key order
//! differs between samples); fields we do not use are ignored, never rejected.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/charges` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateChargeRequest {
    pub order_no: String,
    pub app: AppRef,
    pub channel: String,
    /// Integer minor units (fen).
    pub amount: i64,
    pub client_ip: String,
    /// Lowercase ISO code, e.g. "cny".
    pub currency: String,
    pub subject: String,
    pub body: String,
    /// Unix seconds after which the charge can no longer be paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<i64>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
    #[serde(default)]
    pub extra: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRef {
    pub id: String,
}

/// `POST /v1/charges/{id}/refunds` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRefundRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    pub description: String,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
}

/// A charge object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Charge {
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub livemode: bool,
    #[serde(default)]
    pub paid: bool,
    #[serde(default)]
    pub refunded: bool,
    #[serde(default)]
    pub app: Value,
    pub channel: String,
    pub order_no: String,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub time_paid: Option<i64>,
    #[serde(default)]
    pub time_expire: Option<i64>,
    #[serde(default)]
    pub transaction_no: Option<String>,
    #[serde(default)]
    pub amount_refunded: i64,
    #[serde(default)]
    pub failure_code: Option<String>,
    #[serde(default)]
    pub failure_msg: Option<String>,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub credential: Value,
}

/// A refund object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    #[serde(default)]
    pub object: String,
    pub amount: i64,
    /// "pending", "succeeded" or "failed".
    pub status: String,
    pub charge: String,
    #[serde(default)]
    pub charge_order_no: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub time_succeed: Option<i64>,
    #[serde(default)]
    pub failure_code: Option<String>,
    #[serde(default)]
    pub failure_msg: Option<String>,
    #[serde(default)]
    pub transaction_no: Option<String>,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub created: i64,
}

/// An event object, as delivered by webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub livemode: bool,
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: EventData,
    #[serde(default)]
    pub pending_webhooks: i64,
    #[serde(default)]
    pub request: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventData {
    pub object: Value,
}

/// `{"error": {...}}` as Ping++ answers failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(rename = "type", default)]
    pub error_type: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
}

/// The event types we act on.
pub mod event_types {
    pub const CHARGE_SUCCEEDED: &str = "charge.succeeded";
    pub const REFUND_SUCCEEDED: &str = "refund.succeeded";
    pub const REFUND_FAILED: &str = "refund.failed";
    pub const CHARGE_FAILED: &str = "charge.failed";
}

/// The header carrying a webhook's signature (HTTP header names are case-insensitive).
pub const WEBHOOK_SIGNATURE_HEADER: &str = "x-pingplusplus-signature";
/// Headers of a signed merchant request.
pub const REQUEST_SIGNATURE_HEADER: &str = "pingplusplus-signature";
pub const REQUEST_TIMESTAMP_HEADER: &str = "pingplusplus-request-timestamp";

/// The error code of a 404 ("No such charge"): Ping++'s and the sandbox's alike.
pub const NOT_FOUND_CODE: &str = "resource_missing";

/// A page of a list (`GET /v1/charges/{id}/refunds`), newest first; `has_more` says whether
/// older items follow, fetched with `starting_after` = the last id of this page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundList {
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub data: Vec<Refund>,
}
