//! WeChat Pay v3 request and answer shapes for Native pay, order query and close, refund and
//! refund query. Amounts are integer fen on the wire already.

use serde::{Deserialize, Serialize};

pub mod paths {
    pub const NATIVE: &str = "/v3/pay/transactions/native";
    pub const REFUNDS: &str = "/v3/refund/domestic/refunds";

    pub fn query(out_trade_no: &str, mchid: &str) -> String {
        format!("/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={mchid}")
    }

    pub fn close(out_trade_no: &str) -> String {
        format!("/v3/pay/transactions/out-trade-no/{out_trade_no}/close")
    }

    pub fn refund(out_refund_no: &str) -> String {
        format!("/v3/refund/domestic/refunds/{out_refund_no}")
    }
}

/// Error codes we act on.
pub mod codes {
    pub const ORDER_NOT_EXIST: &str = "ORDER_NOT_EXIST";
    pub const ORDER_PAID: &str = "ORDERPAID";
    pub const ORDER_CLOSED: &str = "ORDERCLOSED";
    pub const RESOURCE_NOT_EXISTS: &str = "RESOURCE_NOT_EXISTS";
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Amount {
    pub total: i64,
    pub currency: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NativeRequest {
    pub appid: String,
    pub mchid: String,
    pub description: String,
    pub out_trade_no: String,
    /// RFC 3339 with an offset.
    pub time_expire: String,
    pub notify_url: String,
    pub amount: Amount,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NativeResponse {
    pub code_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CloseRequest {
    pub mchid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefundAmount {
    pub refund: i64,
    pub total: i64,
    pub currency: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefundRequest {
    pub out_trade_no: String,
    pub out_refund_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
    pub amount: RefundAmount,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Refund {
    #[serde(default)]
    pub refund_id: String,
    pub out_refund_no: String,
    #[serde(default)]
    pub out_trade_no: String,
    /// SUCCESS, CLOSED, PROCESSING or ABNORMAL.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    pub amount: RefundAmountAnswer,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefundAmountAnswer {
    pub refund: i64,
    #[serde(default)]
    pub total: i64,
}

/// The error body of every failed call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: String,
    #[serde(default)]
    pub message: String,
}
