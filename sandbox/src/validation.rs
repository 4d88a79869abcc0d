//! Ping++'s request rules, so a request the real gateway would refuse is refused here too and
//! the ledger cannot pass its tests with a request production would reject.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::SandboxError;
use gateways::pingpp::wire::{CreateChargeRequest, CreateRefundRequest};

/// The channels the sandbox can play, both QR code payments.
pub(super) const CHANNELS: [&str; 2] = ["alipay_qr", "wx_pub_qr"];
pub(super) const CURRENCY: &str = "cny";
const ORDER_NO_MAX_CHARS: usize = 64;
const SUBJECT_MAX_CHARS: usize = 32;
const BODY_MAX_CHARS: usize = 128;
const PRODUCT_ID_MAX_CHARS: usize = 32;
const DESCRIPTION_MAX_CHARS: usize = 255;

/// Parses a JSON body into `T`, naming the offending field where serde tells us which one.
pub(super) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, SandboxError> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        SandboxError::invalid(None, format!("the request body is not valid JSON: {error}"))
    })?;
    if let Some(amount) = value.get("amount") {
        // serde would only say "expected i64": name the field, as Ping++ does.
        if !amount.is_null() && !amount.is_i64() {
            return Err(SandboxError::invalid(
                Some("amount"),
                "amount must be an integer number of fen",
            ));
        }
    }
    serde_json::from_value(value).map_err(|error| {
        let message = error.to_string();
        let param = named_field(&message);
        SandboxError::invalid(param, format!("invalid request: {message}"))
    })
}

/// The field serde names in "missing field `x`" or "unknown field `x`, expected ...".
fn named_field(message: &str) -> Option<&str> {
    ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next())
}

fn chars_within(text: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&text.chars().count())
}

/// Checks a charge request against Ping++'s rules at `now` (unix seconds).
pub(super) fn check_charge(request: &CreateChargeRequest, now: i64) -> Result<(), SandboxError> {
    let order_no = &request.order_no;
    if !chars_within(order_no, 1, ORDER_NO_MAX_CHARS)
        || !order_no.bytes().all(|byte| byte.is_ascii_alphanumeric())
    {
        return Err(SandboxError::invalid(
            Some("order_no"),
            format!("order_no must be 1 to {ORDER_NO_MAX_CHARS} letters or digits"),
        ));
    }
    if request.app.id.trim().is_empty() {
        return Err(SandboxError::invalid(
            Some("app[id]"),
            "app[id] is required",
        ));
    }
    if !CHANNELS.contains(&request.channel.as_str()) {
        return Err(SandboxError::invalid(
            Some("channel"),
            format!("channel must be one of {}", CHANNELS.join(", ")),
        ));
    }
    if request.amount <= 0 {
        return Err(SandboxError::invalid(
            Some("amount"),
            "amount must be an integer number of fen greater than 0",
        ));
    }
    if request.currency != CURRENCY {
        return Err(SandboxError::invalid(
            Some("currency"),
            format!("currency must be \"{CURRENCY}\""),
        ));
    }
    if request.client_ip.parse::<std::net::IpAddr>().is_err() {
        return Err(SandboxError::invalid(
            Some("client_ip"),
            "client_ip must be an IPv4 or IPv6 address",
        ));
    }
    if !chars_within(&request.subject, 1, SUBJECT_MAX_CHARS) {
        return Err(SandboxError::invalid(
            Some("subject"),
            format!("subject must be 1 to {SUBJECT_MAX_CHARS} characters"),
        ));
    }
    if !chars_within(&request.body, 1, BODY_MAX_CHARS) {
        return Err(SandboxError::invalid(
            Some("body"),
            format!("body must be 1 to {BODY_MAX_CHARS} characters"),
        ));
    }
    if let Some(time_expire) = request.time_expire {
        if time_expire <= now {
            return Err(SandboxError::invalid(
                Some("time_expire"),
                "time_expire must be in the future",
            ));
        }
    }
    if request.channel == "wx_pub_qr" {
        let product_id = request.extra.get("product_id").and_then(Value::as_str);
        if !product_id.is_some_and(|id| chars_within(id, 1, PRODUCT_ID_MAX_CHARS)) {
            return Err(SandboxError::invalid(
                Some("extra[product_id]"),
                format!(
                    "wx_pub_qr needs extra[product_id] of 1 to {PRODUCT_ID_MAX_CHARS} characters"
                ),
            ));
        }
    }
    Ok(())
}

/// Checks what can be checked of a refund request without its charge.
pub(super) fn check_refund(request: &CreateRefundRequest) -> Result<(), SandboxError> {
    if !chars_within(&request.description, 1, DESCRIPTION_MAX_CHARS) {
        return Err(SandboxError::invalid(
            Some("description"),
            format!("description must be 1 to {DESCRIPTION_MAX_CHARS} characters"),
        ));
    }
    if request.amount.is_some_and(|amount| amount <= 0) {
        return Err(SandboxError::invalid(
            Some("amount"),
            "amount must be an integer number of fen greater than 0",
        ));
    }
    Ok(())
}
