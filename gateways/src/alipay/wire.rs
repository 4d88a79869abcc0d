//! Alipay's method names and the `biz_content` / answer shapes of the five methods we call.
//! Amounts are yuan strings ("0.10") on the wire and fen everywhere else.

use serde::{Deserialize, Serialize};

pub mod methods {
    pub const PRECREATE: &str = "alipay.trade.precreate";
    pub const QUERY: &str = "alipay.trade.query";
    pub const REFUND: &str = "alipay.trade.refund";
    pub const REFUND_QUERY: &str = "alipay.trade.fastpay.refund.query";
    pub const CLOSE: &str = "alipay.trade.close";
}

/// The answer codes (`code`) Alipay documents.
pub mod codes {
    pub const SUCCESS: &str = "10000";
    pub const UNAVAILABLE: &str = "20000";
    pub const UNAUTHORISED: &str = "20001";
    pub const MISSING_ARGUMENT: &str = "40001";
    pub const INVALID_ARGUMENT: &str = "40002";
    pub const BUSINESS_FAILURE: &str = "40004";
    pub const NO_PERMISSION: &str = "40006";
}

/// Business failure codes (`sub_code`) we act on.
pub mod sub_codes {
    pub const TRADE_NOT_EXIST: &str = "ACQ.TRADE_NOT_EXIST";
    pub const TRADE_STATUS_ERROR: &str = "ACQ.TRADE_STATUS_ERROR";
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PrecreateRequest {
    pub out_trade_no: String,
    pub total_amount: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Relative ("15m"): precreate has no absolute expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_express: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PrecreateResponse {
    pub out_trade_no: String,
    pub qr_code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TradeRef {
    pub out_trade_no: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueryResponse {
    pub out_trade_no: String,
    #[serde(default)]
    pub trade_no: Option<String>,
    pub trade_status: String,
    pub total_amount: String,
    /// When the payment went through (Beijing time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_pay_date: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefundRequest {
    pub out_trade_no: String,
    pub refund_amount: String,
    /// Our refund number: a repeat with the same one is the same refund.
    pub out_request_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefundResponse {
    pub out_trade_no: String,
    #[serde(default)]
    pub trade_no: Option<String>,
    /// [`FUND_CHANGED`] when this call moved money; "N" for a repeat of an earlier refund.
    #[serde(default)]
    pub fund_change: Option<String>,
    /// The trade's refunded total so far.
    #[serde(default)]
    pub refund_fee: Option<String>,
}

/// `fund_change` of a refund answer whose call moved the money.
pub const FUND_CHANGED: &str = "Y";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefundQueryRequest {
    pub out_trade_no: String,
    pub out_request_no: String,
    pub query_options: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefundQueryResponse {
    /// Absent when no such refund exists.
    #[serde(default)]
    pub out_request_no: Option<String>,
    #[serde(default)]
    pub out_trade_no: Option<String>,
    #[serde(default)]
    pub refund_amount: Option<String>,
    /// "REFUND_SUCCESS", or absent while it is not done.
    #[serde(default)]
    pub refund_status: Option<String>,
    #[serde(default)]
    pub gmt_refund_pay: Option<String>,
}

pub const REFUND_SUCCESS: &str = "REFUND_SUCCESS";
