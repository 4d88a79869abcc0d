//! The pages a customer sees when scanning a sandbox QR code: the charge with a button that
//! pays it, and a confirmation. Plain HTML with inline CSS and no script; every echoed value
//! is escaped, since subjects and order numbers come from the merchant's request.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use gateways::pingpp::wire::Charge;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;\
padding:0 1rem;color:#222}h1{font-size:1.3rem}.amount{font-size:2.2rem;font-weight:600;\
margin:.5rem 0}dl{display:grid;grid-template-columns:auto 1fr;gap:.3rem 1rem}dt{color:#666}\
dd{margin:0;word-break:break-all}button{font-size:1.1rem;padding:.6rem 1.4rem;border:0;\
border-radius:.4rem;background:#1677ff;color:#fff;cursor:pointer}.note{color:#666;font-size:.9rem}";

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Formats fen as yuan with two decimals, in integer arithmetic: 9900 -> "99.00".
pub(super) fn format_amount(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let magnitude = fen.unsigned_abs();
    format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100)
}

fn channel_name(channel: &str) -> &str {
    match channel {
        "alipay_qr" => "Alipay (QR code)",
        "wx_pub_qr" => "WeChat Pay (QR code)",
        other => other,
    }
}

fn status(charge: &Charge, now: i64) -> &'static str {
    if charge.refunded {
        "Refunded"
    } else if charge.amount_refunded > 0 {
        "Partially refunded"
    } else if charge.paid {
        "Paid"
    } else if charge.time_expire.is_some_and(|at| at <= now) {
        "Expired"
    } else {
        "Awaiting payment"
    }
}

fn page(status: StatusCode, title: &str, content: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title} - payledger sandbox</title><style>{STYLE}</style></head>\
<body>{content}<p class=\"note\">payledger sandbox gateway: no real money moves.</p>\
</body></html>\n",
        title = escape(title),
    );
    let mut response = (status, Html(html)).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn details(charge: &Charge, now: i64) -> String {
    format!(
        "<p class=\"amount\">&yen;{amount} <small>{currency}</small></p>\
<dl><dt>Status</dt><dd>{status}</dd><dt>Channel</dt><dd>{channel}</dd>\
<dt>Subject</dt><dd>{subject}</dd><dt>Order</dt><dd>{order_no}</dd>\
<dt>Charge</dt><dd>{id}</dd></dl>",
        amount = format_amount(charge.amount),
        currency = escape(&charge.currency.to_ascii_uppercase()),
        status = status(charge, now),
        channel = escape(channel_name(&charge.channel)),
        subject = escape(&charge.subject),
        order_no = escape(&charge.order_no),
        id = escape(&charge.id),
    )
}

/// The charge and, while it can be paid, a form that pays it. `pay_url` is absolute.
pub(super) fn charge(charge: &Charge, pay_url: &str, now: i64) -> Response {
    let payable = !charge.paid && !charge.time_expire.is_some_and(|at| at <= now);
    let action = if payable {
        format!(
            "<form method=\"post\" action=\"{url}\"><button type=\"submit\">Pay &yen;{amount}</button></form>",
            url = escape(pay_url),
            amount = format_amount(charge.amount),
        )
    } else {
        String::new()
    };
    page(
        StatusCode::OK,
        "Pay",
        &format!("<h1>Sandbox payment</h1>{}{action}", details(charge, now)),
    )
}

/// Shown after the customer paid.
pub(super) fn paid(charge: &Charge, charge_url: &str, event_id: &str, now: i64) -> Response {
    page(
        StatusCode::OK,
        "Paid",
        &format!(
            "<h1>Payment received</h1>{}<p>Event {event} is on its way to the merchant.</p>\
<p><a href=\"{url}\">Back to the charge</a></p>",
            details(charge, now),
            event = escape(event_id),
            url = escape(charge_url),
        ),
    )
}

/// A refusal, for a browser.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Error",
        &format!("<h1>Cannot continue</h1><p>{}</p>", escape(message)),
    )
}
