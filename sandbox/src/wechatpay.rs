//! WeChat Pay API v3 (`/wechatpay/v3/...`), played over the sandbox's store: every request's
//! `WECHATPAY2-SHA256-RSA2048` Authorization is verified against the merchant key, every
//! answer is signed with the platform key, and payments and refunds go out as callbacks with
//! an AES-256-GCM sealed resource, signed afresh for every delivery attempt.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use gateways::pingpp::wire::{AppRef, Charge, CreateChargeRequest, CreateRefundRequest, Refund};
use gateways::signature;
use gateways::wechatpay::notify::TIMESTAMP_WINDOW_SECONDS;
use gateways::wechatpay::resource;
use gateways::wechatpay::sign::{self as wechat_sign, Authorization};
use gateways::wechatpay::wire::{codes, NativeRequest, RefundRequest};

use super::delivery::{Acceptance, Outgoing, Signature};
use super::protocols::{Origin, WechatPaySide};
use super::{random, PayOptions, Sandbox};

type Failure = (StatusCode, &'static str, String);

fn failure(status: StatusCode, code: &'static str, message: impl Into<String>) -> Failure {
    (status, code, message.into())
}

/// Signs an answer with the platform key, errors included, as the platform does.
fn signed(side: &WechatPaySide, status: StatusCode, body: Vec<u8>) -> Response {
    let timestamp = super::now().to_string();
    let nonce = wechat_sign::nonce();
    let message = wechat_sign::platform_message(&timestamp, &nonce, &body);
    let signature = signature::sign(&side.platform_key, &message);
    (
        status,
        [
            (header::CONTENT_TYPE.as_str(), "application/json".to_owned()),
            (wechat_sign::TIMESTAMP_HEADER, timestamp),
            (wechat_sign::NONCE_HEADER, nonce),
            (wechat_sign::SERIAL_HEADER, side.platform_serial.clone()),
            (wechat_sign::SIGNATURE_HEADER, signature),
        ],
        body,
    )
        .into_response()
}

fn answer(side: &WechatPaySide, outcome: Result<Option<Value>, Failure>) -> Response {
    match outcome {
        Ok(Some(value)) => signed(side, StatusCode::OK, value.to_string().into_bytes()),
        Ok(None) => signed(side, StatusCode::NO_CONTENT, Vec::new()),
        Err((status, code, message)) => signed(
            side,
            status,
            json!({ "code": code, "message": message })
                .to_string()
                .into_bytes(),
        ),
    }
}

/// Checks the merchant's Authorization over method, absolute path, timestamp, nonce, body.
fn authorize(
    side: &WechatPaySide,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Failure> {
    let unauthorized = |message: &str| failure(StatusCode::UNAUTHORIZED, "SIGN_ERROR", message);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(Authorization::parse)
        .ok_or_else(|| unauthorized("Authorization is not WECHATPAY2-SHA256-RSA2048"))?;
    if authorization.mchid != side.mchid || authorization.serial_no != side.merchant_serial {
        return Err(unauthorized("unknown merchant or certificate serial"));
    }
    if super::now().abs_diff(authorization.timestamp) >= TIMESTAMP_WINDOW_SECONDS.unsigned_abs() {
        return Err(unauthorized("the request timestamp is too far from now"));
    }
    let path = uri.path_and_query().map(|path| path.as_str()).unwrap_or("");
    let message = wechat_sign::request_message(
        method.as_str(),
        path,
        authorization.timestamp,
        &authorization.nonce_str,
        body,
    );
    signature::verify(
        &side.merchant_public_key,
        &message,
        &authorization.signature,
    )
    .map_err(|_| unauthorized("签名错误"))
}

/// Runs `call` for an authorized request.
fn handle(
    sandbox: &Sandbox,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    call: impl FnOnce(&Sandbox, &WechatPaySide) -> Result<Option<Value>, Failure>,
) -> Response {
    let Some(side) = sandbox.inner.protocols.wechatpay.as_ref() else {
        return (
            StatusCode::NOT_FOUND,
            "the sandbox does not speak WeChat Pay",
        )
            .into_response();
    };
    let outcome = authorize(side, method, uri, headers, body).and_then(|()| call(sandbox, side));
    answer(side, outcome)
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body)
        .map_err(|error| failure(StatusCode::BAD_REQUEST, "PARAM_ERROR", error.to_string()))
}

pub(super) async fn native(
    State(sandbox): State<Sandbox>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(
        &sandbox,
        &Method::POST,
        &uri,
        &headers,
        &body,
        |sandbox, side| {
            let request: NativeRequest = parse(&body)?;
            sandbox.wechat_native(side, &request).map(Some)
        },
    )
}

pub(super) async fn query(
    State(sandbox): State<Sandbox>,
    OriginalUri(uri): OriginalUri,
    Path(out_trade_no): Path<String>,
    headers: HeaderMap,
) -> Response {
    handle(
        &sandbox,
        &Method::GET,
        &uri,
        &headers,
        b"",
        |sandbox, side| {
            let charge = sandbox.wechat_charge(&out_trade_no)?;
            Ok(Some(transaction(
                side,
                &charge,
                sandbox.is_closed(&charge.id),
                None,
            )))
        },
    )
}

pub(super) async fn close(
    State(sandbox): State<Sandbox>,
    OriginalUri(uri): OriginalUri,
    Path(out_trade_no): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(
        &sandbox,
        &Method::POST,
        &uri,
        &headers,
        &body,
        |sandbox, _| {
            let charge = sandbox.wechat_charge(&out_trade_no)?;
            if charge.paid {
                return Err(failure(
                    StatusCode::BAD_REQUEST,
                    codes::ORDER_PAID,
                    "订单已支付",
                ));
            }
            sandbox.state().protocols.close(&charge.id);
            Ok(None)
        },
    )
}

pub(super) async fn refund(
    State(sandbox): State<Sandbox>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(
        &sandbox,
        &Method::POST,
        &uri,
        &headers,
        &body,
        |sandbox, side| {
            let request: RefundRequest = parse(&body)?;
            sandbox.wechat_refund(side, &request).map(Some)
        },
    )
}

pub(super) async fn refund_query(
    State(sandbox): State<Sandbox>,
    OriginalUri(uri): OriginalUri,
    Path(out_refund_no): Path<String>,
    headers: HeaderMap,
) -> Response {
    handle(&sandbox, &Method::GET, &uri, &headers, b"", |sandbox, _| {
        let (charge, refund) = sandbox.wechat_refund_by_no(&out_refund_no)?;
        Ok(Some(refund_object(&charge, &refund, &out_refund_no)))
    })
}

impl Sandbox {
    fn is_closed(&self, charge_id: &str) -> bool {
        self.state().protocols.is_closed(charge_id)
    }

    fn wechat_charge(&self, out_trade_no: &str) -> Result<Charge, Failure> {
        let state = self.state();
        state
            .store
            .charge_id_for_order_no(out_trade_no)
            .filter(|id| state.protocols.origin(id) == Origin::WechatPay)
            .and_then(|id| state.store.charge_fields(&id).ok())
            .ok_or_else(|| failure(StatusCode::NOT_FOUND, codes::ORDER_NOT_EXIST, "订单不存在"))
    }

    fn wechat_native(
        &self,
        side: &WechatPaySide,
        request: &NativeRequest,
    ) -> Result<Value, Failure> {
        let invalid = |message: &str| failure(StatusCode::BAD_REQUEST, "PARAM_ERROR", message);
        if request.mchid != side.mchid || request.appid != side.appid {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                "APPID_MCHID_NOT_MATCH",
                "appid和mch_id不匹配",
            ));
        }
        if request.notify_url != side.notify_url {
            return Err(invalid("notify_url is not the configured one"));
        }
        if request.amount.currency != "CNY" || request.amount.total <= 0 {
            return Err(invalid("amount must be a positive number of fen in CNY"));
        }
        let time_expire = chrono::DateTime::parse_from_rfc3339(&request.time_expire)
            .map_err(|_| invalid("time_expire is not RFC 3339"))?
            .timestamp();
        if let Ok(existing) = self.wechat_charge(&request.out_trade_no) {
            if existing.amount != request.amount.total {
                return Err(failure(
                    StatusCode::BAD_REQUEST,
                    "INVALID_REQUEST",
                    "订单号重复",
                ));
            }
            return Ok(json!({ "code_url": code_url(&existing) }));
        }
        let description: String = request.description.chars().take(32).collect();
        let mut extra = serde_json::Map::new();
        let product_id: String = request.out_trade_no.chars().take(32).collect();
        extra.insert("product_id".to_owned(), json!(product_id));
        let charge = self
            .create_charge_from(
                CreateChargeRequest {
                    order_no: request.out_trade_no.clone(),
                    app: AppRef {
                        id: side.appid.clone(),
                    },
                    channel: "wx_pub_qr".to_owned(),
                    amount: request.amount.total,
                    client_ip: "127.0.0.1".to_owned(),
                    currency: "cny".to_owned(),
                    body: description.clone(),
                    subject: description,
                    time_expire: Some(time_expire),
                    metadata: serde_json::Map::new(),
                    extra,
                },
                Origin::WechatPay,
            )
            .map_err(|error| invalid(&error.to_string()))?;
        Ok(json!({ "code_url": code_url(&charge) }))
    }

    fn wechat_refund(
        &self,
        side: &WechatPaySide,
        request: &RefundRequest,
    ) -> Result<Value, Failure> {
        let charge = self.wechat_charge(&request.out_trade_no)?;
        if request.amount.total != charge.amount || request.amount.currency != "CNY" {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "订单金额或币种信息不一致",
            ));
        }
        if request
            .notify_url
            .as_ref()
            .is_some_and(|url| url != &side.notify_url)
        {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                "PARAM_ERROR",
                "notify_url is not the configured one",
            ));
        }
        let known = self
            .state()
            .protocols
            .refund_id(Origin::WechatPay, &request.out_refund_no)
            .is_some();
        if !known {
            let mut metadata = serde_json::Map::new();
            metadata.insert("refund_no".to_owned(), json!(request.out_refund_no));
            let created = self
                .create_refund(
                    &charge.id,
                    CreateRefundRequest {
                        amount: Some(request.amount.refund),
                        description: request
                            .reason
                            .clone()
                            .filter(|reason| !reason.is_empty())
                            .unwrap_or_else(|| "refund".to_owned()),
                        metadata,
                    },
                )
                .map_err(|error| {
                    failure(StatusCode::BAD_REQUEST, "NOT_ENOUGH", error.to_string())
                })?;
            let refund_id = created
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.state().protocols.remember_refund(
                Origin::WechatPay,
                &request.out_refund_no,
                refund_id,
            );
        }
        let (charge, refund) = self.wechat_refund_by_no(&request.out_refund_no)?;
        Ok(refund_object(&charge, &refund, &request.out_refund_no))
    }

    fn wechat_refund_by_no(&self, out_refund_no: &str) -> Result<(Charge, Refund), Failure> {
        let not_found = || {
            failure(
                StatusCode::NOT_FOUND,
                codes::RESOURCE_NOT_EXISTS,
                "退款单不存在",
            )
        };
        let state = self.state();
        let refund_id = state
            .protocols
            .refund_id(Origin::WechatPay, out_refund_no)
            .ok_or_else(not_found)?;
        let refund = state
            .store
            .refunds_charge(refund_id)
            .and_then(|charge_id| state.store.refund(&charge_id, refund_id).ok())
            .and_then(|value| serde_json::from_value::<Refund>(value).ok())
            .ok_or_else(not_found)?;
        let charge = state
            .store
            .charge_fields(&refund.charge)
            .map_err(|_| not_found())?;
        Ok((charge, refund))
    }
}

fn code_url(charge: &Charge) -> Value {
    charge
        .credential
        .get("wx_pub_qr")
        .cloned()
        .unwrap_or(Value::Null)
}

fn china_rfc3339(at: i64) -> Option<String> {
    let offset = chrono::FixedOffset::east_opt(8 * 3600)?;
    chrono::DateTime::from_timestamp(at, 0).map(|time| time.with_timezone(&offset).to_rfc3339())
}

/// A transaction as the query API and the payment callback describe it.
fn transaction(side: &WechatPaySide, charge: &Charge, closed: bool, amount: Option<i64>) -> Value {
    let now = super::now();
    let (state, description) = if charge.paid && charge.amount_refunded > 0 {
        ("REFUND", "转入退款")
    } else if charge.paid {
        ("SUCCESS", "支付成功")
    } else if closed || charge.time_expire.is_some_and(|at| at <= now) {
        ("CLOSED", "已关闭")
    } else {
        ("NOTPAY", "未支付")
    };
    let total = amount.unwrap_or(charge.amount);
    let mut value = json!({
        "appid": side.appid,
        "mchid": side.mchid,
        "out_trade_no": charge.order_no,
        "trade_type": "NATIVE",
        "trade_state": state,
        "trade_state_desc": description,
        "bank_type": "OTHERS",
        "attach": "",
        "payer": { "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" },
        "amount": { "total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY" },
    });
    if let (Some(transaction_id), Value::Object(map)) = (&charge.transaction_no, &mut value) {
        map.insert("transaction_id".to_owned(), json!(transaction_id));
        if let Some(paid_at) = charge.time_paid.and_then(china_rfc3339) {
            map.insert("success_time".to_owned(), json!(paid_at));
        }
    }
    value
}

fn refund_object(charge: &Charge, refund: &Refund, out_refund_no: &str) -> Value {
    let status = match refund.status.as_str() {
        "succeeded" => "SUCCESS",
        "failed" => "ABNORMAL",
        _ => "PROCESSING",
    };
    let mut value = json!({
        "refund_id": refund.id,
        "out_refund_no": out_refund_no,
        "out_trade_no": charge.order_no,
        "transaction_id": charge.transaction_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "status": status,
        "refund_status": status,
        "mchid": "",
        "amount": { "total": charge.amount, "refund": refund.amount, "payer_total": charge.amount, "payer_refund": refund.amount, "currency": "CNY" },
    });
    if let (Some(at), Value::Object(map)) =
        (refund.time_succeed.and_then(china_rfc3339), &mut value)
    {
        map.insert("success_time".to_owned(), json!(at));
    }
    value
}

/// A callback: the plaintext sealed into `resource`, signed per attempt with a fresh
/// timestamp and nonce (a corrupt one signs other bytes).
fn callback(
    side: &WechatPaySide,
    event_type: &str,
    summary: &str,
    original_type: &str,
    plaintext: &Value,
    corrupt: bool,
) -> Result<Outgoing, String> {
    let sealed = resource::seal(
        &side.api_v3_key,
        &random::alphanumeric(12),
        original_type,
        original_type,
        plaintext.to_string().as_bytes(),
    )
    .map_err(|error| error.to_string())?;
    let id = uuid::Uuid::new_v4().to_string();
    let body = json!({
        "id": id,
        "create_time": china_rfc3339(super::now()),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": sealed,
    })
    .to_string()
    .into_bytes();
    let key = side.platform_key.clone();
    let serial = side.platform_serial.clone();
    let sign = move |body: &[u8]| {
        let timestamp = super::now().to_string();
        let nonce = wechat_sign::nonce();
        let mut message = wechat_sign::platform_message(&timestamp, &nonce, body);
        if corrupt {
            message.extend_from_slice(b"tampered");
        }
        vec![
            (wechat_sign::TIMESTAMP_HEADER, timestamp),
            (wechat_sign::NONCE_HEADER, nonce),
            (wechat_sign::SERIAL_HEADER, serial.clone()),
            (
                wechat_sign::SIGNATURE_HEADER,
                signature::sign(&key, &message),
            ),
            (
                wechat_sign::SIGNATURE_TYPE_HEADER,
                wechat_sign::SCHEMA.to_owned(),
            ),
        ]
    };
    Ok(Outgoing {
        id,
        event_type: event_type.to_owned(),
        url: Some(side.notify_url.clone()),
        content_type: "application/json",
        body,
        signature: Signature::PerAttempt(Arc::new(sign)),
        acceptance: Acceptance::Success,
    })
}

/// The callback of a payment, bent as `options` say.
pub(super) fn payment_callback(
    side: &WechatPaySide,
    charge: &Charge,
    options: &PayOptions,
) -> Result<Outgoing, String> {
    let plaintext = transaction(side, charge, false, options.amount);
    callback(
        side,
        "TRANSACTION.SUCCESS",
        "支付成功",
        "transaction",
        &plaintext,
        options.corrupt_signature,
    )
}

/// The callback of a completed refund.
pub(super) fn refund_callback(
    side: &WechatPaySide,
    charge: &Charge,
    refund: &Refund,
    out_refund_no: &str,
) -> Result<Outgoing, String> {
    let mut plaintext = refund_object(charge, refund, out_refund_no);
    if let Value::Object(map) = &mut plaintext {
        map.insert("mchid".to_owned(), json!(side.mchid));
    }
    let (event_type, summary) = if refund.status == "succeeded" {
        ("REFUND.SUCCESS", "退款成功")
    } else {
        ("REFUND.ABNORMAL", "退款异常")
    };
    callback(side, event_type, summary, "refund", &plaintext, false)
}
