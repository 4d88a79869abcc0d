//! Whole purchases and refunds through Alipay's and WeChat Pay's real clients, over HTTP to
//! the sandbox, with notifications received the way the service receives them: through the
//! port's `verify_webhook` and answered with its `webhook_reply`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aggregates::{Channel, Currency, Money, OrderId, RefundId};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use rsa::RsaPrivateKey;
use tokio::net::TcpListener;

use super::*;
use gateways::alipay::client::{AlipayClient, AlipaySettings};
use gateways::answer::{self, AnswerError, AnswerFacts};
use gateways::clock::SystemClock;
use gateways::keys;
use gateways::wechatpay::client::{WechatPayClient, WechatPaySettings};
use gateways::wechatpay::notify::NonceCache;
use gateways::wechatpay::platform::PlatformKeys;
use gateways::wechatpay::resource::ApiV3Key;
use gateways::{
    answer_protocols, ChargeRequest, CloseOutcome, GatewayEvent, PaymentGateway, QueryAnswer,
    RefundRequest, RefundState, WebhookHeaders, WebhookVerdict,
};

const APP_ID: &str = "2021000000000001";
const MCHID: &str = "1900009191";
const APPID: &str = "wxd678efh567hg6787";
const MERCHANT_SERIAL: &str = "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C";
const PLATFORM_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A72";
const API_V3_KEY: &str = "0123456789abcdef0123456789abcdef";

/// Key generation is slow: two keys for the whole module, the merchant's and the gateway's.
fn key(index: usize) -> RsaPrivateKey {
    static KEYS: OnceLock<Vec<RsaPrivateKey>> = OnceLock::new();
    KEYS.get_or_init(|| (0..2).map(|_| keys::generate().unwrap()).collect())[index].clone()
}

fn merchant_key() -> RsaPrivateKey {
    key(0)
}

fn gateway_key() -> RsaPrivateKey {
    key(1)
}

/// The service's side of a notification: verify, record, answer as the provider expects.
#[derive(Clone)]
struct Receiver {
    gateway: Arc<dyn PaymentGateway>,
    events: Arc<Mutex<Vec<GatewayEvent>>>,
    refusals: Arc<Mutex<Vec<String>>>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let headers: WebhookHeaders = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    let verdict = receiver.gateway.verify_webhook(&headers, &body);
    let reply = match &verdict {
        Ok(event) => {
            receiver.events.lock().unwrap().push(event.clone());
            receiver.gateway.webhook_reply(WebhookVerdict::Recorded)
        }
        Err(rejection) => {
            receiver
                .refusals
                .lock()
                .unwrap()
                .push(rejection.code().to_owned());
            receiver
                .gateway
                .webhook_reply(WebhookVerdict::Refused(rejection))
        }
    };
    (
        StatusCode::from_u16(reply.status).unwrap(),
        [(axum::http::header::CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
        .into_response()
}

impl Receiver {
    async fn wait_for(&self, count: usize) -> Vec<GatewayEvent> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.events.lock().unwrap().clone();
            if events.len() >= count {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} events, got {events:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn refusals(&self) -> Vec<String> {
        self.refusals.lock().unwrap().clone()
    }
}

struct Harness {
    sandbox: Sandbox,
    gateway: Arc<dyn PaymentGateway>,
    receiver: Receiver,
}

#[derive(Clone, Copy)]
enum Provider {
    Alipay,
    WechatPay,
}

async fn start(provider: Provider) -> Harness {
    let notify_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let notify_url = format!("http://{}/notify", notify_listener.local_addr().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public_url = format!("http://{}", listener.local_addr().unwrap());

    let protocols = match provider {
        Provider::Alipay => Protocols {
            alipay: Some(AlipaySide {
                app_id: APP_ID.to_owned(),
                app_public_key: merchant_key().to_public_key(),
                alipay_key: gateway_key(),
                notify_url: notify_url.clone(),
            }),
            wechatpay: None,
        },
        Provider::WechatPay => Protocols {
            alipay: None,
            wechatpay: Some(WechatPaySide {
                mchid: MCHID.to_owned(),
                appid: APPID.to_owned(),
                merchant_serial: MERCHANT_SERIAL.to_owned(),
                merchant_public_key: merchant_key().to_public_key(),
                platform_serial: PLATFORM_SERIAL.to_owned(),
                platform_key: gateway_key(),
                api_v3_key: ApiV3Key::parse(API_V3_KEY).unwrap(),
                notify_url: notify_url.clone(),
            }),
        },
    };
    let sandbox = Sandbox::with_protocols(
        SandboxConfig {
            api_key: None,
            signing_key: gateway_key(),
            webhook_url: format!("{public_url}/unused"),
            public_url: public_url.clone(),
        },
        protocols,
    );
    sandbox
        .update_knobs(KnobsUpdate {
            retry_base_ms: Some(5),
            refund_delay_ms: Some(20),
            ..KnobsUpdate::default()
        })
        .unwrap();
    let app = Router::new().nest(MOUNT_PATH, sandbox.router());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let gateway: Arc<dyn PaymentGateway> = match provider {
        Provider::Alipay => Arc::new(
            AlipayClient::new(
                AlipaySettings {
                    gateway_url: format!("{public_url}{MOUNT_PATH}/alipay/gateway.do"),
                    app_id: APP_ID.to_owned(),
                    merchant_private_key: merchant_key(),
                    alipay_public_key: gateway_key().to_public_key(),
                    notify_url,
                    provider_name: "sandbox",
                },
                Arc::new(SystemClock),
            )
            .unwrap(),
        ),
        Provider::WechatPay => Arc::new(
            WechatPayClient::new(
                WechatPaySettings {
                    api_base: format!("{public_url}{MOUNT_PATH}/wechatpay"),
                    mchid: MCHID.to_owned(),
                    appid: APPID.to_owned(),
                    merchant_serial: MERCHANT_SERIAL.to_owned(),
                    merchant_private_key: merchant_key(),
                    platform_keys: PlatformKeys::new()
                        .with(PLATFORM_SERIAL, gateway_key().to_public_key()),
                    api_v3_key: ApiV3Key::parse(API_V3_KEY).unwrap(),
                    notify_url,
                    provider_name: "sandbox",
                },
                Arc::new(SystemClock),
                NonceCache::default(),
            )
            .unwrap(),
        ),
    };
    let receiver = Receiver {
        gateway: Arc::clone(&gateway),
        events: Arc::default(),
        refusals: Arc::default(),
    };
    let notify_app = Router::new()
        .route("/notify", post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(notify_listener, notify_app).await.unwrap() });
    Harness {
        sandbox,
        gateway,
        receiver,
    }
}

fn charge_request(channel: Channel, amount_minor: i64) -> ChargeRequest {
    ChargeRequest {
        order_id: OrderId::from_uuid(uuid::Uuid::new_v4()),
        amount: Money::new(amount_minor, Currency::Cny).unwrap(),
        channel,
        subject: "专业版会员 Pro membership".to_owned(),
        body: "Pro membership, one month".to_owned(),
        client_ip: "203.0.113.7".to_owned(),
        expires_at: chrono::Utc::now() + chrono::TimeDelta::minutes(15),
    }
}

/// A kept answer read again as `payledger verify` does, with the gateway's key (the one
/// its fingerprint names).
fn reread_kept(answer: &QueryAnswer) -> Result<AnswerFacts, AnswerError> {
    let key = gateway_key().to_public_key();
    assert!(answer::is_signed(answer.protocol));
    assert_eq!(
        answer.key_fingerprint,
        Some(keys::fingerprint(&key).unwrap())
    );
    let headers: WebhookHeaders = answer
        .signature_headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes().to_vec()))
        .collect();
    answer::reread(answer.protocol, Some(&key), &headers, &answer.body)
}

/// One digit of the kept answer's order number changed: its signature no longer holds.
fn assert_tampering_shows(answer: &QueryAnswer) {
    let mut tampered = answer.clone();
    let field = b"\"out_trade_no\":\"";
    let at = tampered
        .body
        .windows(field.len())
        .position(|window| window == field)
        .unwrap()
        + field.len();
    tampered.body[at] = if tampered.body[at] == b'0' {
        b'1'
    } else {
        b'0'
    };
    assert!(
        matches!(reread_kept(&tampered), Err(AnswerError::Signature(_))),
        "{:?}",
        reread_kept(&tampered)
    );
}

/// The sandbox's own charge id: the last segment of the QR code's URL.
fn sandbox_charge_id(qr_code: &str) -> String {
    qr_code.rsplit('/').next().unwrap().to_owned()
}

async fn purchase_and_refund(provider: Provider, channel: Channel) {
    let harness = start(provider).await;
    let gateway = &harness.gateway;
    let issued = gateway
        .create_charge(&charge_request(channel, 8888))
        .await
        .unwrap();
    let before = gateway
        .retrieve_charge(&issued.charge_id)
        .await
        .unwrap()
        .charge;
    assert!(!before.paid);
    assert_eq!(before.amount.amount_minor(), 8888);

    harness
        .sandbox
        .pay(&sandbox_charge_id(&issued.qr_code), &PayOptions::default())
        .unwrap();
    let events = harness.receiver.wait_for(1).await;
    let GatewayEvent::ChargeSucceeded { charge, .. } = &events[0] else {
        panic!("{events:?}");
    };
    assert_eq!(charge.charge_id, issued.charge_id);
    assert_eq!(charge.amount.amount_minor(), 8888);
    assert!(charge.transaction_no.is_some());
    let retrieved = gateway.retrieve_charge(&issued.charge_id).await.unwrap();
    let after = retrieved.charge.clone();
    assert!(after.paid);
    assert!(after.time_paid.is_some());
    // The answer is kept exactly as it came, signed: read again later it says the same.
    assert_eq!(
        reread_kept(&retrieved.answer),
        Ok(AnswerFacts::Charge(after.clone()))
    );
    assert_tampering_shows(&retrieved.answer);

    let refund_id = RefundId::from_uuid(uuid::Uuid::new_v4());
    let refund_request = RefundRequest {
        charge_id: issued.charge_id.clone(),
        refund_id,
        amount: Money::new(1000, Currency::Cny).unwrap(),
        description: "不想要了 changed my mind".to_owned(),
    };
    let refund = gateway.create_refund(&refund_request).await.unwrap();
    assert_eq!(refund.state, RefundState::Pending);
    // A repeated refund is the same refund, not a second one.
    let again = gateway.create_refund(&refund_request).await.unwrap();
    assert_eq!(again.gateway_refund_id, refund.gateway_refund_id);

    let deadline = Instant::now() + Duration::from_secs(5);
    let settled = loop {
        let looked_up = gateway
            .retrieve_refund(&issued.charge_id, &refund.gateway_refund_id)
            .await
            .unwrap();
        if looked_up.state != RefundState::Pending {
            break looked_up;
        }
        assert!(Instant::now() < deadline, "the refund never completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(settled.state, RefundState::Succeeded);
    assert_eq!(settled.facts.refund_id, Some(refund_id));
    assert_eq!(settled.facts.amount.amount_minor(), 1000);
    assert!(settled.facts.succeeded_at.is_some());
    assert_eq!(
        reread_kept(&settled.answer),
        Ok(AnswerFacts::Refund {
            state: settled.state,
            facts: settled.facts.clone()
        })
    );
    assert_tampering_shows(&settled.answer);
    // Found by our refund id alone, as after a crash that lost the gateway's answer; a
    // refund the gateway never saw is none.
    let found = gateway
        .find_refund(&issued.charge_id, &refund_id)
        .await
        .unwrap()
        .unwrap();
    // The answers differ (a list page, a single refund); what they say does not.
    assert_eq!((found.state, &found.facts), (settled.state, &settled.facts));
    let never_sent = RefundId::from_uuid(uuid::Uuid::new_v4());
    assert_eq!(
        gateway
            .find_refund(&issued.charge_id, &never_sent)
            .await
            .unwrap(),
        None
    );
    // Alipay's refund notification is kept for audit; WeChat Pay's is a refund event.
    let events = harness.receiver.wait_for(2).await;
    match provider {
        Provider::Alipay => assert_eq!(events[1].event_type(), "alipay.trade_refunded"),
        Provider::WechatPay => {
            let GatewayEvent::RefundSucceeded { refund: facts, .. } = &events[1] else {
                panic!("{events:?}");
            };
            assert_eq!(facts.refund_id, Some(refund_id));
        }
    }
    assert!(harness.receiver.refusals().is_empty());
}

#[tokio::test]
async fn an_alipay_purchase_and_refund_run_through_the_real_client() {
    purchase_and_refund(Provider::Alipay, Channel::AlipayQr).await;
}

#[tokio::test]
async fn a_wechatpay_purchase_and_refund_run_through_the_real_client() {
    purchase_and_refund(Provider::WechatPay, Channel::WxPubQr).await;
}

async fn closing(provider: Provider, channel: Channel) {
    let harness = start(provider).await;
    let gateway = &harness.gateway;
    let unpaid = gateway
        .create_charge(&charge_request(channel, 100))
        .await
        .unwrap();
    assert_eq!(
        gateway.close_charge(&unpaid.charge_id).await.unwrap(),
        CloseOutcome::Closed
    );
    // A pass that died after closing closes again on its next run: still closed.
    assert_eq!(
        gateway.close_charge(&unpaid.charge_id).await.unwrap(),
        CloseOutcome::Closed
    );
    assert!(harness
        .sandbox
        .pay(&sandbox_charge_id(&unpaid.qr_code), &PayOptions::default())
        .is_err());
    let state = gateway
        .retrieve_charge(&unpaid.charge_id)
        .await
        .unwrap()
        .charge;
    assert!(!state.paid);

    let paid = gateway
        .create_charge(&charge_request(channel, 100))
        .await
        .unwrap();
    harness
        .sandbox
        .pay(&sandbox_charge_id(&paid.qr_code), &PayOptions::default())
        .unwrap();
    assert_eq!(
        gateway.close_charge(&paid.charge_id).await.unwrap(),
        CloseOutcome::AlreadyPaid
    );
}

#[tokio::test]
async fn alipay_closes_unpaid_charges_only() {
    closing(Provider::Alipay, Channel::AlipayQr).await;
}

#[tokio::test]
async fn wechatpay_closes_unpaid_charges_only() {
    closing(Provider::WechatPay, Channel::WxPubQr).await;
}

async fn knobs(provider: Provider, channel: Channel) {
    let harness = start(provider).await;
    let gateway = &harness.gateway;
    let pay = |options: PayOptions| {
        let harness = &harness;
        async move {
            let issued = gateway
                .create_charge(&charge_request(channel, 500))
                .await
                .unwrap();
            harness
                .sandbox
                .pay(&sandbox_charge_id(&issued.qr_code), &options)
                .unwrap();
        }
    };
    // A forged notification is refused every time, and never recorded.
    pay(PayOptions {
        corrupt_signature: true,
        ..PayOptions::default()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while harness.sandbox.deliveries().abandoned < 1 {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            harness.sandbox.deliveries()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(harness.receiver.events.lock().unwrap().is_empty());
    assert!(harness
        .receiver
        .refusals()
        .iter()
        .all(|code| code == "webhook.signature_invalid"));

    // A duplicate is delivered twice (WeChat Pay re-signs each, so neither is a replay)
    // and carries the same event id.
    pay(PayOptions {
        duplicate: 1,
        amount: Some(1),
        ..PayOptions::default()
    })
    .await;
    let events = harness.receiver.wait_for(2).await;
    assert_eq!(events[0].event_id(), events[1].event_id());
    let GatewayEvent::ChargeSucceeded { charge, .. } = &events[0] else {
        panic!("{events:?}");
    };
    assert_eq!(
        charge.amount.amount_minor(),
        1,
        "the amount knob bends the notification"
    );
}

#[tokio::test]
async fn alipay_notifications_follow_the_knobs() {
    knobs(Provider::Alipay, Channel::AlipayQr).await;
}

#[tokio::test]
async fn wechatpay_callbacks_follow_the_knobs() {
    knobs(Provider::WechatPay, Channel::WxPubQr).await;
}

#[tokio::test]
async fn an_alipay_acknowledgement_other_than_success_is_retried() {
    let harness = start(Provider::Alipay).await;
    // Point the sandbox at a receiver that answers 200 "SUCCESS": not what Alipay wants.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let wrong = Router::new().route("/notify", post(|| async { "SUCCESS" }));
    tokio::spawn(async move { axum::serve(listener, wrong).await.unwrap() });
    let side = harness.sandbox.inner.protocols.alipay.as_ref().unwrap();
    let issued = harness
        .gateway
        .create_charge(&charge_request(Channel::AlipayQr, 100))
        .await
        .unwrap();
    let charge = harness
        .sandbox
        .page_charge(&sandbox_charge_id(&issued.qr_code))
        .unwrap();
    let mut outgoing = alipay::payment_notification(side, &charge, &PayOptions::default(), now());
    outgoing.url = Some(format!("http://{address}/notify"));
    harness.sandbox.inner.outbox.dispatch(
        delivery::Delivery {
            event: Arc::new(outgoing),
            copies: 1,
            delay: Duration::ZERO,
            retry_base: Duration::from_millis(1),
        },
        delivery::Route::Deliver,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while harness.sandbox.deliveries().abandoned < 1 {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            harness.sandbox.deliveries()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(harness.sandbox.deliveries().delivered, 0);
}

#[tokio::test]
async fn requests_signed_with_another_key_are_refused() {
    let harness = start(Provider::WechatPay).await;
    let stranger = WechatPayClient::new(
        WechatPaySettings {
            api_base: harness.gateway_base(),
            mchid: MCHID.to_owned(),
            appid: APPID.to_owned(),
            merchant_serial: MERCHANT_SERIAL.to_owned(),
            merchant_private_key: gateway_key(),
            platform_keys: PlatformKeys::new().with(PLATFORM_SERIAL, gateway_key().to_public_key()),
            api_v3_key: ApiV3Key::parse(API_V3_KEY).unwrap(),
            notify_url: "http://127.0.0.1:9/notify".to_owned(),
            provider_name: "sandbox",
        },
        Arc::new(SystemClock),
        NonceCache::default(),
    )
    .unwrap();
    let error = stranger
        .create_charge(&charge_request(Channel::WxPubQr, 100))
        .await
        .unwrap_err();
    assert_eq!(error, gateways::GatewayError::Authentication);
}

impl Harness {
    fn gateway_base(&self) -> String {
        format!("{}{MOUNT_PATH}/wechatpay", self.sandbox.inner.public_url)
    }
}

async fn paid_charge(harness: &Harness, channel: Channel) -> gateways::IssuedCharge {
    let issued = harness
        .gateway
        .create_charge(&charge_request(channel, 300))
        .await
        .unwrap();
    harness
        .sandbox
        .pay(&sandbox_charge_id(&issued.qr_code), &PayOptions::default())
        .unwrap();
    harness.receiver.wait_for(1).await;
    issued
}

fn refund_of(issued: &gateways::IssuedCharge) -> RefundRequest {
    RefundRequest {
        charge_id: issued.charge_id.clone(),
        refund_id: RefundId::from_uuid(uuid::Uuid::new_v4()),
        amount: Money::new(300, Currency::Cny).unwrap(),
        description: "refund".to_owned(),
    }
}

fn fail_next_refund(harness: &Harness) {
    harness
        .sandbox
        .update_knobs(KnobsUpdate {
            fail_next_refund: Some(true),
            ..KnobsUpdate::default()
        })
        .unwrap();
}

fn refunds_finish_in_answer(harness: &Harness) {
    harness
        .sandbox
        .update_knobs(KnobsUpdate {
            refunds_finish_in_answer: Some(true),
            ..KnobsUpdate::default()
        })
        .unwrap();
}

/// Nothing but the payment's notification arrived: the refund's answer was its only report.
async fn assert_no_refund_notification(harness: &Harness) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(harness.receiver.events.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_alipay_refund_finished_in_its_answer_comes_with_that_signed_answer() {
    let harness = start(Provider::Alipay).await;
    let issued = paid_charge(&harness, Channel::AlipayQr).await;
    refunds_finish_in_answer(&harness);
    let refund = harness
        .gateway
        .create_refund(&refund_of(&issued))
        .await
        .unwrap();
    assert_eq!(refund.state, RefundState::Succeeded);
    assert_eq!(refund.answer.protocol, answer_protocols::ALIPAY_REFUND);
    let Ok(AnswerFacts::TradeRefunded {
        charge_id,
        refunded_total,
        ..
    }) = reread_kept(&refund.answer)
    else {
        panic!("{:?}", reread_kept(&refund.answer));
    };
    assert_eq!(charge_id, issued.charge_id);
    assert_eq!(refunded_total.amount_minor(), 300);
    assert_tampering_shows(&refund.answer);
    assert_no_refund_notification(&harness).await;
}

#[tokio::test]
async fn a_wechatpay_refund_finished_in_its_answer_comes_with_that_signed_answer() {
    let harness = start(Provider::WechatPay).await;
    let issued = paid_charge(&harness, Channel::WxPubQr).await;
    refunds_finish_in_answer(&harness);
    let request = refund_of(&issued);
    let refund = harness.gateway.create_refund(&request).await.unwrap();
    assert_eq!(refund.state, RefundState::Succeeded);
    assert_eq!(refund.answer.protocol, answer_protocols::WECHATPAY_REFUND);
    let Ok(AnswerFacts::Refund { state, facts }) = reread_kept(&refund.answer) else {
        panic!("{:?}", reread_kept(&refund.answer));
    };
    assert_eq!(state, RefundState::Succeeded);
    assert_eq!(facts.refund_id, Some(request.refund_id));
    assert_eq!(facts.amount, request.amount);
    assert_tampering_shows(&refund.answer);
    assert_no_refund_notification(&harness).await;
}

#[tokio::test]
async fn a_failing_wechatpay_refund_ends_abnormal_and_says_so() {
    let harness = start(Provider::WechatPay).await;
    let issued = paid_charge(&harness, Channel::WxPubQr).await;
    fail_next_refund(&harness);
    let refund = harness
        .gateway
        .create_refund(&refund_of(&issued))
        .await
        .unwrap();
    let events = harness.receiver.wait_for(2).await;
    let GatewayEvent::RefundFailed { refund: facts, .. } = &events[1] else {
        panic!("{events:?}");
    };
    assert_eq!(facts.gateway_refund_id, refund.gateway_refund_id);
    let looked_up = harness
        .gateway
        .retrieve_refund(&issued.charge_id, &refund.gateway_refund_id)
        .await
        .unwrap();
    assert_eq!(looked_up.state, RefundState::Failed);
}

#[tokio::test]
async fn a_failing_alipay_refund_is_refused_on_the_spot() {
    let harness = start(Provider::Alipay).await;
    let issued = paid_charge(&harness, Channel::AlipayQr).await;
    fail_next_refund(&harness);
    let error = harness
        .gateway
        .create_refund(&refund_of(&issued))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, gateways::GatewayError::Rejected { code: Some(code), .. } if code == "ACQ.SELLER_BALANCE_NOT_ENOUGH"),
        "{error:?}"
    );
    // The knob is spent: the next refund goes through.
    let refund = harness
        .gateway
        .create_refund(&refund_of(&issued))
        .await
        .unwrap();
    assert_eq!(refund.state, RefundState::Pending);
}

#[tokio::test]
async fn pingpp_charges_reverse_and_refunds_are_looked_up_through_the_real_client() {
    use gateways::pingpp::client::{PingppClient, PingppSettings};

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public_url = format!("http://{}", listener.local_addr().unwrap());
    let sandbox = Sandbox::new(SandboxConfig {
        api_key: None,
        signing_key: gateway_key(),
        webhook_url: format!("{public_url}/unused"),
        public_url: public_url.clone(),
    });
    sandbox
        .update_knobs(KnobsUpdate {
            refund_delay_ms: Some(10),
            retry_base_ms: Some(1),
            ..KnobsUpdate::default()
        })
        .unwrap();
    let app = Router::new().nest(MOUNT_PATH, sandbox.router());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = PingppClient::new(PingppSettings {
        api_base: format!("{public_url}{MOUNT_PATH}/v1"),
        app_id: "app_sandbox".to_owned(),
        api_key: gateways::Secret::new("sk_test_sandbox".to_owned()),
        merchant_key: None,
        webhook_public_key: gateway_key().to_public_key(),
        provider_name: "sandbox",
    })
    .unwrap();

    let unpaid = client
        .create_charge(&charge_request(Channel::AlipayQr, 100))
        .await
        .unwrap();
    assert_eq!(
        client.close_charge(&unpaid.charge_id).await.unwrap(),
        CloseOutcome::Closed
    );
    assert_eq!(
        client.close_charge(&unpaid.charge_id).await.unwrap(),
        CloseOutcome::Closed,
        "closing twice is harmless"
    );
    assert!(sandbox
        .pay(unpaid.charge_id.as_str(), &PayOptions::default())
        .is_err());
    let missing = aggregates::ChargeId::parse("ch_missing000000000000000").unwrap();
    assert_eq!(
        client.close_charge(&missing).await.unwrap(),
        CloseOutcome::NotFound
    );

    let paid = client
        .create_charge(&charge_request(Channel::AlipayQr, 100))
        .await
        .unwrap();
    sandbox
        .pay(paid.charge_id.as_str(), &PayOptions::default())
        .unwrap();
    assert_eq!(
        client.close_charge(&paid.charge_id).await.unwrap(),
        CloseOutcome::AlreadyPaid
    );
    let refund_id = RefundId::from_uuid(uuid::Uuid::new_v4());
    let refund = client
        .create_refund(&RefundRequest {
            charge_id: paid.charge_id.clone(),
            refund_id,
            amount: Money::new(40, Currency::Cny).unwrap(),
            description: "refund".to_owned(),
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let looked_up = client
            .retrieve_refund(&paid.charge_id, &refund.gateway_refund_id)
            .await
            .unwrap();
        if looked_up.state == RefundState::Succeeded {
            assert_eq!(looked_up.facts.refund_id, Some(refund_id));
            assert_eq!(looked_up.facts.amount.amount_minor(), 40);
            break;
        }
        assert!(Instant::now() < deadline, "{looked_up:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Two more refunds: each is found by our refund id in its metadata, the list pages
    // newest first, and a refund id the sandbox never saw is none.
    let mut ours = vec![refund_id];
    for _ in 0..2 {
        let next = RefundId::from_uuid(uuid::Uuid::new_v4());
        client
            .create_refund(&RefundRequest {
                charge_id: paid.charge_id.clone(),
                refund_id: next,
                amount: Money::new(10, Currency::Cny).unwrap(),
                description: "refund".to_owned(),
            })
            .await
            .unwrap();
        ours.push(next);
    }
    for refund_id in &ours {
        let found = client
            .find_refund(&paid.charge_id, refund_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.facts.refund_id, Some(*refund_id));
    }
    let unknown = RefundId::from_uuid(uuid::Uuid::new_v4());
    assert_eq!(
        client.find_refund(&paid.charge_id, &unknown).await.unwrap(),
        None
    );
    let first = sandbox
        .refund_list(
            paid.charge_id.as_str(),
            &RefundListQuery {
                limit: Some(2),
                starting_after: None,
            },
        )
        .unwrap();
    assert_eq!(first["has_more"], true);
    let data = first["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["metadata"]["refund_id"], ours[2].to_string());
    let last = sandbox
        .refund_list(
            paid.charge_id.as_str(),
            &RefundListQuery {
                limit: Some(2),
                starting_after: data[1]["id"].as_str().map(str::to_owned),
            },
        )
        .unwrap();
    assert_eq!(last["has_more"], false);
    assert_eq!(
        last["data"][0]["metadata"]["refund_id"],
        ours[0].to_string()
    );
    let too_big = RefundListQuery {
        limit: Some(101),
        starting_after: None,
    };
    assert!(sandbox
        .refund_list(paid.charge_id.as_str(), &too_big)
        .is_err());
}
