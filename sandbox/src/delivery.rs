//! Webhook delivery as a real gateway does it: a POST per event, judged by the status code only,
//! retried with exponential backoff until a 2xx or the attempt limit. Each event is delivered in
//! its own task, so a slow receiver never holds up the API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use super::events::SignedEvent;
use gateways::pingpp::wire::WEBHOOK_SIGNATURE_HEADER;

/// Signs one attempt of a delivery: the headers to send with `body`.
pub(super) type AttemptSigner = Arc<dyn Fn(&[u8]) -> Vec<(&'static str, String)> + Send + Sync>;

/// How an attempt is signed.
#[derive(Clone)]
pub(super) enum Signature {
    /// The same headers every time (Ping++ signs the body once; Alipay signs inside it).
    Fixed(Vec<(&'static str, String)>),
    /// Fresh headers for every attempt (WeChat Pay signs a new timestamp and nonce).
    PerAttempt(AttemptSigner),
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(headers) => formatter.debug_tuple("Fixed").field(headers).finish(),
            Self::PerAttempt(_) => formatter.write_str("PerAttempt"),
        }
    }
}

/// What counts as delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Acceptance {
    /// Any 2xx (Ping++, WeChat Pay).
    Success,
    /// A 2xx whose body is exactly this (Alipay's `success`).
    ExactBody(&'static str),
}

/// A notification ready to POST, in any provider's protocol.
#[derive(Debug, Clone)]
pub(super) struct Outgoing {
    pub id: String,
    pub event_type: String,
    /// None: the sandbox's configured webhook URL.
    pub url: Option<String>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub signature: Signature,
    pub acceptance: Acceptance,
}

impl From<SignedEvent> for Outgoing {
    fn from(event: SignedEvent) -> Self {
        Self {
            id: event.id,
            event_type: event.event_type.to_owned(),
            url: None,
            content_type: "application/json",
            body: event.body,
            signature: Signature::Fixed(vec![(WEBHOOK_SIGNATURE_HEADER, event.signature)]),
            acceptance: Acceptance::Success,
        }
    }
}

/// Attempts per delivery (the first one included) before the sandbox gives up.
pub const MAX_ATTEMPTS: u32 = 8;
/// The backoff doubles up to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Time allowed for one attempt, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Events held for reordering; beyond this they are delivered at once instead.
const MAX_HELD: usize = 100;

/// Delivery counts since the sandbox started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryStats {
    /// POSTs made (every retry and duplicate counts).
    pub attempted: u64,
    /// POSTs answered with a 2xx.
    pub delivered: u64,
    /// POSTs answered otherwise, or not answered.
    pub failed: u64,
    /// Events deliberately never sent (`drop=1`).
    pub dropped: u64,
    /// Deliveries given up after `MAX_ATTEMPTS` failed attempts.
    pub abandoned: u64,
}

#[derive(Debug, Default)]
struct Counters {
    attempted: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    abandoned: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One event to deliver, and how.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    pub event: Arc<Outgoing>,
    /// 1 plus the duplicates: each copy is a full delivery with its own retries.
    pub copies: u32,
    /// Wait before the first attempt.
    pub delay: Duration,
    pub retry_base: Duration,
}

/// What to do with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Deliver,
    /// Keep it until the next delivered event has gone out, then deliver it.
    Hold,
    /// Never send it.
    Drop,
}

/// The POSTing half, shared by the delivery tasks.
#[derive(Debug)]
struct Courier {
    client: reqwest::Client,
    webhook_url: String,
    counters: Counters,
}

impl Courier {
    /// Delivers one copy; true once a 2xx came back.
    async fn deliver(&self, event: &Outgoing, retry_base: Duration) -> bool {
        let mut backoff = retry_base.min(MAX_BACKOFF);
        let url = event.url.as_deref().unwrap_or(&self.webhook_url);
        for attempt in 1..=MAX_ATTEMPTS {
            bump(&self.counters.attempted);
            let headers = match &event.signature {
                Signature::Fixed(headers) => headers.clone(),
                Signature::PerAttempt(sign) => sign(&event.body),
            };
            let mut request = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, event.content_type)
                .body(event.body.clone());
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let body = response.bytes().await.unwrap_or_default();
                    Ok((status, body))
                }
                Err(error) => Err(error),
            };
            match outcome {
                Ok((status, body)) if accepted(event.acceptance, status, &body) => {
                    bump(&self.counters.delivered);
                    return true;
                }
                Ok((status, _)) => {
                    bump(&self.counters.failed);
                    tracing::debug!(event_id = %event.id, attempt, %status, "webhook refused");
                }
                Err(error) => {
                    bump(&self.counters.failed);
                    tracing::debug!(event_id = %event.id, attempt, %error, "webhook not delivered");
                }
            }
            if attempt < MAX_ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
            }
        }
        bump(&self.counters.abandoned);
        tracing::warn!(
            event_id = %event.id,
            event_type = event.event_type,
            attempts = MAX_ATTEMPTS,
            "gave up delivering a webhook"
        );
        false
    }

    async fn run(&self, delivery: &Delivery) {
        if !delivery.delay.is_zero() {
            tokio::time::sleep(delivery.delay).await;
        }
        for _ in 0..delivery.copies {
            self.deliver(&delivery.event, delivery.retry_base).await;
        }
    }
}

fn accepted(acceptance: Acceptance, status: reqwest::StatusCode, body: &[u8]) -> bool {
    status.is_success()
        && match acceptance {
            Acceptance::Success => true,
            Acceptance::ExactBody(expected) => body == expected.as_bytes(),
        }
}

/// Sends events to the configured webhook URL, or the notify URL a protocol configured.
#[derive(Debug)]
pub(super) struct Outbox {
    courier: Arc<Courier>,
    held: Mutex<Vec<Delivery>>,
}

impl Outbox {
    pub(super) fn new(webhook_url: String) -> Self {
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            // The target is exactly what the configuration says: no redirects, no proxies.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent("payledger-sandbox")
            .build()
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "webhook client set-up failed; using the default client");
                reqwest::Client::new()
            });
        Self {
            courier: Arc::new(Courier {
                client,
                webhook_url,
                counters: Counters::default(),
            }),
            held: Mutex::new(Vec::new()),
        }
    }

    /// Routes an event. Delivering spawns a task (call it within a Tokio runtime) that sends
    /// the event, then every held one, in that order.
    pub(super) fn dispatch(&self, delivery: Delivery, route: Route) {
        let counters = &self.courier.counters;
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        match route {
            Route::Drop => {
                bump(&counters.dropped);
                tracing::info!(event_id = %delivery.event.id, "webhook dropped on purpose");
            }
            Route::Hold if held.len() < MAX_HELD => held.push(delivery),
            Route::Hold | Route::Deliver => {
                let released = std::mem::take(&mut *held);
                let courier = Arc::clone(&self.courier);
                tokio::spawn(async move {
                    courier.run(&delivery).await;
                    for later in &released {
                        courier.run(later).await;
                    }
                });
            }
        }
    }

    pub(super) fn stats(&self) -> DeliveryStats {
        let counters = &self.courier.counters;
        DeliveryStats {
            attempted: counters.attempted.load(Ordering::Relaxed),
            delivered: counters.delivered.load(Ordering::Relaxed),
            failed: counters.failed.load(Ordering::Relaxed),
            dropped: counters.dropped.load(Ordering::Relaxed),
            abandoned: counters.abandoned.load(Ordering::Relaxed),
        }
    }
}
