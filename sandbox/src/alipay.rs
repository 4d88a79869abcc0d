//! Alipay's open-platform gateway (`POST /alipay/gateway.do`), played over the sandbox's
//! store: requests are form posts verified against the merchant's application key, answers
//! are `{"<method>_response": {...}, "sign": ...}` signed over the exact response text, and
//! payments go out as signed `trade_status_sync` notifications that count as delivered only
//! when answered exactly `success`.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use gateways::alipay::notify::{china_time_text, TRADE_STATUS_SYNC};
use gateways::alipay::sign::{self as alipay_sign, RSA2, SIGN, SIGN_TYPE};
use gateways::alipay::wire::{codes, methods, sub_codes};
use gateways::alipay::{form, notify::ACKNOWLEDGEMENT};
use gateways::pingpp::wire::{AppRef, Charge, CreateChargeRequest, CreateRefundRequest, Refund};
use gateways::signature;
use gateways::yuan;

use super::delivery::{Acceptance, Outgoing, Signature};
use super::protocols::{AlipaySide, Origin};
use super::{random, PayOptions, Sandbox, MOUNT_PATH};

/// Precreate's default expiry when the request names none (Alipay's is two hours).
const DEFAULT_TIMEOUT_MINUTES: i64 = 120;

/// A business answer: the response object's members besides `code` and `msg`.
type Answer = Result<Map<String, Value>, (&'static str, &'static str, String)>;

fn failure(code: &'static str, sub_code: &'static str, message: impl Into<String>) -> Answer {
    Err((code, sub_code, message.into()))
}

pub(super) async fn gateway(
    State(sandbox): State<Sandbox>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Response {
    let Some(side) = sandbox.inner.protocols.alipay.as_ref() else {
        return (StatusCode::NOT_FOUND, "the sandbox does not speak Alipay").into_response();
    };
    // The SDKs put the common parameters in the query string and biz_content in the body.
    let mut params = match form::parse(uri.query().unwrap_or_default().as_bytes()) {
        Ok(params) => params,
        Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    };
    match form::parse(&body) {
        Ok(posted) => params.extend(posted),
        Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    }
    let method = params.get("method").cloned().unwrap_or_default();
    let answer = match check_request(side, &params) {
        Ok(biz) => sandbox.alipay_call(side, &method, &params, &biz),
        Err(refusal) => Err(refusal),
    };
    signed_answer(side, &method, answer)
}

/// Checks what Alipay checks before a method runs: app, scheme, signature, biz_content.
fn check_request(
    side: &AlipaySide,
    params: &BTreeMap<String, String>,
) -> Result<Value, (&'static str, &'static str, String)> {
    let invalid = |sub_code, message: &str| (codes::INVALID_ARGUMENT, sub_code, message.to_owned());
    if params.get("app_id") != Some(&side.app_id) {
        return Err(invalid("isv.invalid-app-id", "无效的AppID参数"));
    }
    if params.get(SIGN_TYPE).map(String::as_str) != Some(RSA2) {
        return Err(invalid(
            "isv.invalid-signature-type",
            "sign_type must be RSA2",
        ));
    }
    let sign = params.get(SIGN).cloned().unwrap_or_default();
    let content = alipay_sign::request_content(params);
    if signature::verify(&side.app_public_key, content.as_bytes(), &sign).is_err() {
        return Err(invalid("isv.invalid-signature", "验签出错"));
    }
    let biz = params
        .get("biz_content")
        .map(String::as_str)
        .unwrap_or("{}");
    serde_json::from_str(biz)
        .map_err(|_| invalid("isv.invalid-parameter", "biz_content is not JSON"))
}

/// Renders and signs an answer over the exact text of its response object.
fn signed_answer(side: &AlipaySide, method: &str, answer: Answer) -> Response {
    let mut object = Map::new();
    match answer {
        Ok(members) => {
            object.insert("code".to_owned(), json!(codes::SUCCESS));
            object.insert("msg".to_owned(), json!("Success"));
            object.extend(members);
        }
        Err((code, sub_code, message)) => {
            object.insert("code".to_owned(), json!(code));
            object.insert("msg".to_owned(), json!("Business Failed"));
            object.insert("sub_code".to_owned(), json!(sub_code));
            object.insert("sub_msg".to_owned(), json!(message));
        }
    }
    let text = Value::Object(object).to_string();
    let key = gateways::alipay::response::response_key(method);
    let sign = signature::sign(&side.alipay_key, text.as_bytes());
    let body = format!("{{\"{key}\":{text},\"sign\":\"{sign}\"}}");
    (
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body,
    )
        .into_response()
}

fn text<'a>(biz: &'a Value, name: &str) -> &'a str {
    biz.get(name).and_then(Value::as_str).unwrap_or_default()
}

fn fen(biz: &Value, name: &str) -> Result<i64, (&'static str, &'static str, String)> {
    yuan::fen_from_yuan(text(biz, name)).map_err(|error| {
        (
            codes::INVALID_ARGUMENT,
            "isv.invalid-parameter",
            format!("{name}: {error}"),
        )
    })
}

fn yuan_text(fen: i64) -> String {
    yuan::yuan_from_fen(fen).unwrap_or_default()
}

impl Sandbox {
    fn alipay_call(
        &self,
        side: &AlipaySide,
        method: &str,
        params: &BTreeMap<String, String>,
        biz: &Value,
    ) -> Answer {
        match method {
            methods::PRECREATE => self.alipay_precreate(side, params, biz),
            methods::QUERY => self.alipay_query(biz),
            methods::REFUND => self.alipay_refund(biz),
            methods::REFUND_QUERY => self.alipay_refund_query(biz),
            methods::CLOSE => self.alipay_close(biz),
            _ => failure(
                codes::INVALID_ARGUMENT,
                "isv.invalid-method",
                "不存在的方法名",
            ),
        }
    }

    fn alipay_charge(
        &self,
        out_trade_no: &str,
    ) -> Result<Charge, (&'static str, &'static str, String)> {
        let state = self.state();
        state
            .store
            .charge_id_for_order_no(out_trade_no)
            .filter(|id| state.protocols.origin(id) == Origin::Alipay)
            .and_then(|id| state.store.charge_fields(&id).ok())
            .ok_or((
                codes::BUSINESS_FAILURE,
                sub_codes::TRADE_NOT_EXIST,
                "交易不存在".to_owned(),
            ))
    }

    fn alipay_precreate(
        &self,
        side: &AlipaySide,
        params: &BTreeMap<String, String>,
        biz: &Value,
    ) -> Answer {
        if params.get("notify_url") != Some(&side.notify_url) {
            return failure(
                codes::INVALID_ARGUMENT,
                "isv.invalid-notify-url",
                "notify_url is not the configured one",
            );
        }
        let out_trade_no = text(biz, "out_trade_no");
        let amount = fen(biz, "total_amount")?;
        if let Ok(existing) = self.alipay_charge(out_trade_no) {
            // The same order again is the same QR code; another amount is a conflict.
            if existing.amount != amount {
                return failure(
                    codes::BUSINESS_FAILURE,
                    "ACQ.CONTEXT_INCONSISTENT",
                    "交易信息被篡改",
                );
            }
            return Ok(qr_answer(&existing));
        }
        let minutes = text(biz, "timeout_express")
            .strip_suffix('m')
            .and_then(|minutes| minutes.parse::<i64>().ok())
            .unwrap_or(DEFAULT_TIMEOUT_MINUTES);
        let subject: String = text(biz, "subject").chars().take(32).collect();
        let body = Some(text(biz, "body"))
            .filter(|body| !body.is_empty())
            .unwrap_or(&subject)
            .chars()
            .take(128)
            .collect();
        let request = CreateChargeRequest {
            order_no: out_trade_no.to_owned(),
            app: AppRef {
                id: side.app_id.clone(),
            },
            channel: "alipay_qr".to_owned(),
            amount,
            client_ip: "127.0.0.1".to_owned(),
            currency: "cny".to_owned(),
            subject,
            body,
            time_expire: Some(super::now().saturating_add(minutes.saturating_mul(60))),
            metadata: Map::new(),
            extra: Map::new(),
        };
        let created = self
            .create_charge_from(request, Origin::Alipay)
            .map_err(|error| {
                (
                    codes::INVALID_ARGUMENT,
                    "isv.invalid-parameter",
                    error.to_string(),
                )
            })?;
        Ok(qr_answer(&created))
    }

    fn alipay_query(&self, biz: &Value) -> Answer {
        let charge = self.alipay_charge(text(biz, "out_trade_no"))?;
        let closed = self.state().protocols.is_closed(&charge.id);
        let mut members = Map::new();
        members.insert("out_trade_no".to_owned(), json!(charge.order_no));
        members.insert(
            "trade_status".to_owned(),
            json!(trade_status(&charge, closed, super::now())),
        );
        members.insert("total_amount".to_owned(), json!(yuan_text(charge.amount)));
        if let Some(trade_no) = &charge.transaction_no {
            members.insert("trade_no".to_owned(), json!(trade_no));
        }
        if let Some(paid_at) = charge
            .time_paid
            .and_then(|at| chrono::DateTime::from_timestamp(at, 0))
        {
            members.insert("send_pay_date".to_owned(), json!(china_time_text(paid_at)));
        }
        Ok(members)
    }

    fn alipay_refund(&self, biz: &Value) -> Answer {
        let charge = self.alipay_charge(text(biz, "out_trade_no"))?;
        let refund_no = text(biz, "out_request_no");
        let amount = fen(biz, "refund_amount")?;
        let existing = self
            .state()
            .protocols
            .refund_id(Origin::Alipay, refund_no)
            .map(str::to_owned);
        // Whether this call moved the money: only a refund it created and finished did.
        let mut moved = false;
        if existing.is_none() {
            // Alipay refunds synchronously: a failing refund is refused on the spot.
            let fail = std::mem::take(&mut self.state().knobs.fail_next_refund);
            if fail {
                return failure(
                    codes::BUSINESS_FAILURE,
                    "ACQ.SELLER_BALANCE_NOT_ENOUGH",
                    "卖家余额不足",
                );
            }
            let mut metadata = Map::new();
            metadata.insert("refund_no".to_owned(), json!(refund_no));
            let reason = Some(text(biz, "refund_reason")).filter(|reason| !reason.is_empty());
            let request = CreateRefundRequest {
                amount: Some(amount),
                description: reason.unwrap_or("refund").to_owned(),
                metadata,
            };
            let refund = self.create_refund(&charge.id, request).map_err(|error| {
                (
                    codes::BUSINESS_FAILURE,
                    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                    error.to_string(),
                )
            })?;
            moved = refund.get("status").and_then(Value::as_str) == Some("succeeded");
            let refund_id = refund.get("id").and_then(Value::as_str).unwrap_or_default();
            self.state()
                .protocols
                .remember_refund(Origin::Alipay, refund_no, refund_id);
        }
        let charge = self.alipay_charge(&charge.order_no)?;
        let mut members = Map::new();
        members.insert("out_trade_no".to_owned(), json!(charge.order_no));
        members.insert("trade_no".to_owned(), json!(charge.transaction_no));
        // The money moves when the sandbox completes the refund: in this call when refunds
        // finish in the answer, otherwise after its refund delay.
        let fund_change = if moved { "Y" } else { "N" };
        members.insert("fund_change".to_owned(), json!(fund_change));
        members.insert(
            "refund_fee".to_owned(),
            json!(yuan_text(charge.amount_refunded)),
        );
        Ok(members)
    }

    fn alipay_refund_query(&self, biz: &Value) -> Answer {
        let charge = self.alipay_charge(text(biz, "out_trade_no"))?;
        let refund_no = text(biz, "out_request_no");
        let mut members = Map::new();
        let refund = {
            let state = self.state();
            state
                .protocols
                .refund_id(Origin::Alipay, refund_no)
                .and_then(|refund_id| state.store.refund(&charge.id, refund_id).ok())
        };
        // No such refund is a success with nothing in it, as Alipay answers.
        let Some(refund) = refund.and_then(|value| serde_json::from_value::<Refund>(value).ok())
        else {
            return Ok(members);
        };
        members.insert("out_trade_no".to_owned(), json!(charge.order_no));
        members.insert("out_request_no".to_owned(), json!(refund_no));
        members.insert("refund_amount".to_owned(), json!(yuan_text(refund.amount)));
        members.insert("total_amount".to_owned(), json!(yuan_text(charge.amount)));
        if refund.status == "succeeded" {
            members.insert("refund_status".to_owned(), json!("REFUND_SUCCESS"));
            if let Some(at) = refund
                .time_succeed
                .and_then(|at| chrono::DateTime::from_timestamp(at, 0))
            {
                members.insert("gmt_refund_pay".to_owned(), json!(china_time_text(at)));
            }
        }
        Ok(members)
    }

    fn alipay_close(&self, biz: &Value) -> Answer {
        let charge = self.alipay_charge(text(biz, "out_trade_no"))?;
        if charge.paid {
            return failure(
                codes::BUSINESS_FAILURE,
                sub_codes::TRADE_STATUS_ERROR,
                "交易状态不合法",
            );
        }
        self.state().protocols.close(&charge.id);
        let mut members = Map::new();
        members.insert("out_trade_no".to_owned(), json!(charge.order_no));
        Ok(members)
    }
}

fn qr_answer(charge: &Charge) -> Map<String, Value> {
    let mut members = Map::new();
    members.insert("out_trade_no".to_owned(), json!(charge.order_no));
    let qr_code = charge
        .credential
        .get("alipay_qr")
        .cloned()
        .unwrap_or_else(|| json!(format!("{MOUNT_PATH}/charges/{}", charge.id)));
    members.insert("qr_code".to_owned(), qr_code);
    members
}

fn trade_status(charge: &Charge, closed: bool, now: i64) -> &'static str {
    if charge.paid {
        if charge.amount_refunded >= charge.amount {
            "TRADE_CLOSED"
        } else {
            "TRADE_SUCCESS"
        }
    } else if closed || charge.time_expire.is_some_and(|at| at <= now) {
        "TRADE_CLOSED"
    } else {
        "WAIT_BUYER_PAY"
    }
}

/// The common members of every notification about `charge`.
fn notification_params(side: &AlipaySide, charge: &Charge, now: i64) -> BTreeMap<String, String> {
    let time = |at: i64| {
        chrono::DateTime::from_timestamp(at, 0)
            .map(china_time_text)
            .unwrap_or_default()
    };
    [
        ("notify_id", random::digits(34)),
        ("notify_type", TRADE_STATUS_SYNC.to_owned()),
        ("notify_time", time(now)),
        ("app_id", side.app_id.clone()),
        ("auth_app_id", side.app_id.clone()),
        ("charset", "utf-8".to_owned()),
        ("version", "1.0".to_owned()),
        (SIGN_TYPE, RSA2.to_owned()),
        ("out_trade_no", charge.order_no.clone()),
        (
            "trade_no",
            charge.transaction_no.clone().unwrap_or_default(),
        ),
        ("subject", charge.subject.clone()),
        ("buyer_id", "2088102534368455".to_owned()),
        ("seller_id", "2088531891668739".to_owned()),
        ("gmt_create", time(charge.created)),
        (
            "gmt_payment",
            charge.time_paid.map(time).unwrap_or_default(),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// Signs `params` (without `sign_type`, as trade notifications are) into a form body; a
/// corrupt signature is a well-formed one over other content.
fn signed_form(side: &AlipaySide, mut params: BTreeMap<String, String>, corrupt: bool) -> Vec<u8> {
    let mut content = alipay_sign::notification_content(&params, false);
    if corrupt {
        content.push_str("&tampered=1");
    }
    params.insert(
        SIGN.to_owned(),
        signature::sign(&side.alipay_key, content.as_bytes()),
    );
    form::encode(&params).into_bytes()
}

fn outgoing(
    side: &AlipaySide,
    event_type: &str,
    params: BTreeMap<String, String>,
    corrupt: bool,
) -> Outgoing {
    Outgoing {
        id: params.get("notify_id").cloned().unwrap_or_default(),
        event_type: event_type.to_owned(),
        url: Some(side.notify_url.clone()),
        content_type: "application/x-www-form-urlencoded; charset=utf-8",
        body: signed_form(side, params, corrupt),
        signature: Signature::Fixed(Vec::new()),
        acceptance: Acceptance::ExactBody(ACKNOWLEDGEMENT),
    }
}

/// The notification of a payment, bent as `options` say.
pub(super) fn payment_notification(
    side: &AlipaySide,
    charge: &Charge,
    options: &PayOptions,
    now: i64,
) -> Outgoing {
    let mut params = notification_params(side, charge, now);
    let amount = yuan_text(options.amount.unwrap_or(charge.amount));
    for name in [
        "total_amount",
        "receipt_amount",
        "invoice_amount",
        "buyer_pay_amount",
    ] {
        params.insert(name.to_owned(), amount.clone());
    }
    params.insert("trade_status".to_owned(), "TRADE_SUCCESS".to_owned());
    outgoing(
        side,
        "alipay.trade_success",
        params,
        options.corrupt_signature,
    )
}

/// The notification a completed refund sends: the trade with its refunded total.
pub(super) fn refund_notification(
    side: &AlipaySide,
    charge: &Charge,
    refund: &Refund,
    refund_no: &str,
    now: i64,
) -> Outgoing {
    let mut params = notification_params(side, charge, now);
    params.insert("total_amount".to_owned(), yuan_text(charge.amount));
    params.insert("refund_fee".to_owned(), yuan_text(charge.amount_refunded));
    params.insert("out_biz_no".to_owned(), refund_no.to_owned());
    params.insert(
        "gmt_refund".to_owned(),
        refund
            .time_succeed
            .and_then(|at| chrono::DateTime::from_timestamp(at, 0))
            .map(china_time_text)
            .unwrap_or_default(),
    );
    let status = if charge.amount_refunded >= charge.amount {
        "TRADE_CLOSED"
    } else {
        "TRADE_SUCCESS"
    };
    params.insert("trade_status".to_owned(), status.to_owned());
    outgoing(side, "alipay.trade_refunded", params, false)
}
