//! A Ping++-compatible gateway that runs inside the service (under `/sandbox`) or on its own,
//! so the whole payment flow (charge, customer payment, signed webhooks, refunds) runs and is
//! tested on a bare machine. It speaks the same wire objects and signatures as the Ping++
//! client, and its knobs reproduce what real gateways do to merchants: duplicate, late, lost,
//! forged and reordered webhooks, failing refunds, mismatched amounts.

mod alipay;
mod auth;
mod delivery;
mod error;
mod events;
mod knobs;
mod pages;
mod paging;
mod protocols;
#[cfg(test)]
mod provider_tests;
mod random;
mod routes;
mod store;
#[cfg(test)]
mod tests;
mod validation;
mod wechatpay;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::Serialize;
use serde_json::Value;

use gateways::pingpp::wire::{event_types, Charge, CreateChargeRequest, CreateRefundRequest};
use gateways::Secret;

pub use delivery::{DeliveryStats, ATTEMPT_TIMEOUT, MAX_ATTEMPTS, MAX_BACKOFF};
pub use error::SandboxError;
pub use knobs::{Knobs, KnobsUpdate, PayOptions};
pub use paging::RefundListQuery;
pub use protocols::{AlipaySide, Protocols, WechatPaySide};

use delivery::{Delivery, Outbox, Outgoing, Route};
use events::Signing;
use protocols::{Origin, ProtocolState};
use store::{RefundOutcome, Store};

/// Where the sandbox's pages live under `public_url`.
pub const MOUNT_PATH: &str = "/sandbox";

/// How the sandbox is set up.
pub struct SandboxConfig {
    /// When set, API calls must carry `Authorization: Bearer <key>` (or HTTP Basic with the
    /// key as the user); the customer's pages never need it.
    pub api_key: Option<Secret>,
    /// Signs every webhook; its public half is what the ledger verifies with.
    pub signing_key: RsaPrivateKey,
    /// The only place events are POSTed to.
    pub webhook_url: String,
    /// The base URL the sandbox is reachable at, without `/sandbox` (e.g.
    /// `http://127.0.0.1:8080`); QR credentials and forms point at `{public_url}/sandbox/...`.
    pub public_url: String,
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SandboxConfig")
            .field("api_key", &self.api_key)
            .field("signing_key", &"***")
            .field("webhook_url", &self.webhook_url)
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// What paying a charge returns: the charge as now stored and the id of its event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Payment {
    pub charge: Value,
    pub event_id: String,
}

/// The sandbox gateway. Cloning is cheap and shares the state: charges, refunds, knobs and
/// delivery counts live in memory for the life of the process.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    api_key: Option<Secret>,
    signing_key: RsaPrivateKey,
    public_key: RsaPublicKey,
    public_url: String,
    state: Mutex<State>,
    outbox: Outbox,
    protocols: Protocols,
}

#[derive(Debug, Default)]
struct State {
    store: Store,
    knobs: Knobs,
    protocols: ProtocolState,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Sandbox")
            .field("public_url", &self.inner.public_url)
            .field("deliveries", &self.deliveries())
            .finish_non_exhaustive()
    }
}

/// Unix seconds, the unit of every Ping++ timestamp.
fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Sandbox {
    /// A sandbox speaking Ping++'s protocol only.
    pub fn new(config: SandboxConfig) -> Sandbox {
        Self::with_protocols(config, Protocols::default())
    }

    /// A sandbox speaking Ping++'s protocol and those in `protocols` (Alipay under
    /// `/alipay/gateway.do`, WeChat Pay under `/wechatpay/v3/...`).
    pub fn with_protocols(config: SandboxConfig, protocols: Protocols) -> Sandbox {
        let public_key = RsaPublicKey::from(&config.signing_key);
        Sandbox {
            inner: Arc::new(Inner {
                api_key: config.api_key,
                signing_key: config.signing_key,
                public_key,
                public_url: config.public_url.trim_end_matches('/').to_owned(),
                state: Mutex::new(State::default()),
                outbox: Outbox::new(config.webhook_url),
                protocols,
            }),
        }
    }

    /// The key webhooks verify with (give it to the Ping++ client as the gateway's key).
    pub fn public_key(&self) -> RsaPublicKey {
        self.inner.public_key.clone()
    }

    /// The routes, without the `/sandbox` prefix: mount with `.nest("/sandbox", router)`.
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone())
    }

    pub fn deliveries(&self) -> DeliveryStats {
        self.inner.outbox.stats()
    }

    pub fn knobs(&self) -> Knobs {
        self.state().knobs
    }

    pub fn update_knobs(&self, update: KnobsUpdate) -> Result<Knobs, SandboxError> {
        let mut state = self.state();
        state.knobs.apply(update)?;
        Ok(state.knobs)
    }

    /// `POST /v1/charges`: a new charge, or the one an identical request created before.
    pub fn create_charge(&self, request: CreateChargeRequest) -> Result<Value, SandboxError> {
        let credential_base = format!("{}{MOUNT_PATH}/charges", self.inner.public_url);
        self.state()
            .store
            .create_charge(request, now(), &credential_base)
    }

    /// A charge created through another protocol: the same store, marked with its origin so
    /// its notifications speak that protocol.
    fn create_charge_from(
        &self,
        request: CreateChargeRequest,
        origin: Origin,
    ) -> Result<Charge, SandboxError> {
        let credential_base = format!("{}{MOUNT_PATH}/charges", self.inner.public_url);
        let mut state = self.state();
        let created = state
            .store
            .create_charge(request, now(), &credential_base)?;
        let id = created
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| SandboxError::internal("a new charge has no id"))?;
        state.protocols.set_origin(&id, origin);
        state.store.charge_fields(&id)
    }

    /// `POST /v1/charges/{id}/reverse`: an unpaid charge can no longer be paid; a paid one
    /// is returned as it is (paid).
    pub fn reverse_charge(&self, id: &str) -> Result<Value, SandboxError> {
        let mut state = self.state();
        let charge = state.store.charge_fields(id)?;
        if !charge.paid {
            state.protocols.close(id);
        }
        let mut value = state.store.charge(id)?;
        if let Value::Object(map) = &mut value {
            map.insert("reversed".to_owned(), Value::Bool(!charge.paid));
        }
        Ok(value)
    }

    /// `GET /v1/charges/{id}`.
    pub fn charge(&self, id: &str) -> Result<Value, SandboxError> {
        self.state().store.charge(id)
    }

    /// The customer pays `id`; its `charge.succeeded` event goes out as `options` say. Call it
    /// within a Tokio runtime (delivery runs in a spawned task).
    pub fn pay(&self, id: &str, options: &PayOptions) -> Result<Payment, SandboxError> {
        options.check()?;
        let now = now();
        let (charge, retry_base_ms, origin) = {
            let mut state = self.state();
            // `late` is money the channel took before the gateway saw the close (or the
            // expiry): it happens, and the ledger must still record it.
            if state.protocols.is_closed(id) && !options.late {
                return Err(SandboxError::invalid(
                    None,
                    format!("charge {id} was closed and can no longer be paid"),
                ));
            }
            let charge = state.store.pay(id, now, options.late)?;
            (
                charge,
                state.knobs.retry_base_ms,
                state.protocols.origin(id),
            )
        };
        let outgoing = self.payment_outgoing(origin, id, &charge, options, now)?;
        let event_id = outgoing.id.clone();
        let route = if options.drop {
            Route::Drop
        } else if options.reorder {
            Route::Hold
        } else {
            Route::Deliver
        };
        self.inner.outbox.dispatch(
            Delivery {
                event: Arc::new(outgoing),
                copies: options.duplicate.saturating_add(1),
                delay: Duration::from_millis(options.delay_ms),
                retry_base: Duration::from_millis(retry_base_ms),
            },
            route,
        );
        Ok(Payment { charge, event_id })
    }

    /// The payment's notification in the protocol the charge was created through.
    fn payment_outgoing(
        &self,
        origin: Origin,
        id: &str,
        charge: &Value,
        options: &PayOptions,
        now: i64,
    ) -> Result<Outgoing, SandboxError> {
        let protocols = &self.inner.protocols;
        match (origin, &protocols.alipay, &protocols.wechatpay) {
            (Origin::Alipay, Some(side), _) => Ok(alipay::payment_notification(
                side,
                &self.page_charge(id)?,
                options,
                now,
            )),
            (Origin::WechatPay, _, Some(side)) => {
                wechatpay::payment_callback(side, &self.page_charge(id)?, options)
                    .map_err(SandboxError::internal)
            }
            _ => {
                let mut object = charge.clone();
                if let (Some(amount), Value::Object(map)) = (options.amount, &mut object) {
                    map.insert("amount".to_owned(), Value::from(amount));
                }
                let signing = if options.corrupt_signature {
                    Signing::Corrupt
                } else {
                    Signing::Genuine
                };
                let event = events::signed(
                    &self.inner.signing_key,
                    event_types::CHARGE_SUCCEEDED,
                    object,
                    now,
                    signing,
                )?;
                Ok(event.into())
            }
        }
    }

    /// `POST /v1/charges/{id}/refunds`: a pending refund that completes after the refund
    /// delay, then sends `refund.succeeded` (or `refund.failed` when `fail_next_refund` was
    /// set); with `refunds_finish_in_answer`, the refund as completed, and nothing after.
    /// Call it within a Tokio runtime.
    pub fn create_refund(
        &self,
        charge_id: &str,
        request: CreateRefundRequest,
    ) -> Result<Value, SandboxError> {
        let (refund, delay_ms, in_answer) = {
            let mut state = self.state();
            let outcome = if state.knobs.fail_next_refund {
                RefundOutcome::Fail
            } else {
                RefundOutcome::Succeed
            };
            let refund = state
                .store
                .create_refund(charge_id, request, now(), outcome)?;
            // Only a refund actually created takes the knob.
            state.knobs.fail_next_refund = false;
            (
                refund,
                state.knobs.refund_delay_ms,
                state.knobs.refunds_finish_in_answer,
            )
        };
        let refund_id = refund
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| SandboxError::internal("a new refund has no id"))?;
        if in_answer {
            // The answer is the refund's only report, so no notification is sent.
            let completed = self.state().store.complete_refund(&refund_id, now());
            return Ok(completed.map_or(refund, |completed| completed.refund));
        }
        let sandbox = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            sandbox.complete_refund(&refund_id);
        });
        Ok(refund)
    }

    /// `GET /v1/charges/{id}/refunds?limit=&starting_after=`: one page of the charge's
    /// refunds, newest first.
    pub fn refund_list(
        &self,
        charge_id: &str,
        page: &RefundListQuery,
    ) -> Result<Value, SandboxError> {
        let limit = page.limit()?;
        self.state()
            .store
            .refund_list(charge_id, limit, page.starting_after.as_deref())
    }

    /// `GET /v1/charges/{id}/refunds/{refund_id}`.
    pub fn refund(&self, charge_id: &str, refund_id: &str) -> Result<Value, SandboxError> {
        self.state().store.refund(charge_id, refund_id)
    }

    fn complete_refund(&self, refund_id: &str) {
        let now = now();
        let (completed, retry_base_ms) = {
            let mut state = self.state();
            (
                state.store.complete_refund(refund_id, now),
                state.knobs.retry_base_ms,
            )
        };
        let Some(completed) = completed else {
            return;
        };
        match self.refund_outgoing(&completed, now) {
            Ok(outgoing) => self.inner.outbox.dispatch(
                Delivery {
                    event: Arc::new(outgoing),
                    copies: 1,
                    delay: Duration::ZERO,
                    retry_base: Duration::from_millis(retry_base_ms),
                },
                Route::Deliver,
            ),
            Err(error) => tracing::error!(%error, refund_id, "cannot build a refund event"),
        }
    }

    /// A completed refund's notification in the protocol its charge was created through.
    fn refund_outgoing(
        &self,
        completed: &store::CompletedRefund,
        now: i64,
    ) -> Result<Outgoing, SandboxError> {
        let refund: gateways::pingpp::wire::Refund =
            serde_json::from_value(completed.refund.clone()).map_err(SandboxError::internal)?;
        let origin = self.state().protocols.origin(&refund.charge);
        let refund_no = refund
            .metadata
            .get("refund_no")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let protocols = &self.inner.protocols;
        match (origin, &protocols.alipay, &protocols.wechatpay) {
            (Origin::Alipay, Some(side), _) => {
                let charge = self.page_charge(&refund.charge)?;
                Ok(alipay::refund_notification(
                    side, &charge, &refund, &refund_no, now,
                ))
            }
            (Origin::WechatPay, _, Some(side)) => {
                let charge = self.page_charge(&refund.charge)?;
                wechatpay::refund_callback(side, &charge, &refund, &refund_no)
                    .map_err(SandboxError::internal)
            }
            _ => {
                let event_type = match completed.outcome {
                    RefundOutcome::Succeed => event_types::REFUND_SUCCEEDED,
                    RefundOutcome::Fail => event_types::REFUND_FAILED,
                };
                let event = events::signed(
                    &self.inner.signing_key,
                    event_type,
                    completed.refund.clone(),
                    now,
                    Signing::Genuine,
                )?;
                Ok(event.into())
            }
        }
    }

    fn page_charge(&self, id: &str) -> Result<Charge, SandboxError> {
        self.state().store.charge_fields(id)
    }

    fn page_url(&self, id: &str) -> String {
        format!("{}{MOUNT_PATH}/charges/{id}", self.inner.public_url)
    }

    fn pay_url(&self, id: &str) -> String {
        format!("{}/pay", self.page_url(id))
    }

    /// The lock is never held across an await, so a poisoned lock only means a panic in
    /// plain bookkeeping; the data is still consistent enough for a sandbox.
    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs the sandbox on its own (`payledger sandbox --addr ... --webhook-url ...`): serves it
/// under `/sandbox` on `addr` until the future is dropped or the process gets ctrl-c.
pub async fn serve_standalone(addr: SocketAddr, config: SandboxConfig) -> std::io::Result<()> {
    let sandbox = Sandbox::new(config);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(
        address = %listener.local_addr()?,
        public_url = %sandbox.inner.public_url,
        "sandbox gateway listening"
    );
    let app = axum::Router::new().nest(MOUNT_PATH, sandbox.router());
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            if tokio::signal::ctrl_c().await.is_err() {
                // Without a signal handler, run until the future is dropped.
                std::future::pending::<()>().await;
            }
        })
        .await
}
