//! Sending deliveries: one worker per endpoint, so a slow or dead endpoint only ever delays
//! itself. A worker claims due deliveries of its endpoint (each the oldest pending one of its
//! order or member), posts them concurrently, and records each attempt.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::deliveries::{self, AttemptOutcome, Claimed};
use super::endpoints::{self, Endpoint};
use super::settings::MerchantSettings;
use super::signature::{self, SIGNATURE_HEADER};
use crate::metrics::MerchantAttempt;
use crate::state::AppState;

/// Deliveries of one endpoint in flight at once (each of a different order or member).
pub const IN_FLIGHT_PER_ENDPOINT_MAX: i64 = 8;
/// A claimed delivery is held this much longer than the response may take.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How often the endpoints are read again without being woken, as a backstop. This process's
/// API wakes the supervisor itself, and the outbox, which reads the endpoints every few
/// seconds anyway, wakes it when another process added or removed one.
const WORKERS_RECHECK: Duration = Duration::from_secs(60);
/// Pause after a database failure before trying again.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Keeps one worker running per active endpoint, rereading the endpoints when woken and
/// every `WORKERS_RECHECK`.
pub async fn supervise(state: AppState, settings: MerchantSettings, wake: Arc<Notify>) {
    let client = match reqwest::Client::builder()
        .timeout(settings.response_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("payledger/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the merchant webhook client");
            return;
        }
    };
    let mut workers = Workers::default();
    loop {
        // Registered before reading, so an endpoint added meanwhile is not missed.
        let woken = wake.notified();
        match endpoints::active(&state.store.read).await {
            Ok(current) => {
                workers.0.retain(|id, (known, worker)| {
                    let keep =
                        current.iter().any(|endpoint| endpoint == known) && !worker.is_finished();
                    if !keep {
                        tracing::debug!(endpoint = %id, "merchant endpoint worker stopped");
                        worker.abort();
                    }
                    keep
                });
                for endpoint in current {
                    if workers.0.contains_key(&endpoint.id) {
                        continue;
                    }
                    let Some(secrets) = secrets_of(&endpoint, &settings) else {
                        continue;
                    };
                    let worker = Worker {
                        state: state.clone(),
                        settings: settings.clone(),
                        client: client.clone(),
                        url: endpoint.url.clone(),
                        endpoint_id: endpoint.id.clone(),
                        secrets,
                        wake: wake.clone(),
                    };
                    workers
                        .0
                        .insert(endpoint.id.clone(), (endpoint, tokio::spawn(worker.run())));
                }
            }
            Err(error) => tracing::error!(%error, "cannot read the merchant endpoints"),
        }
        let _ = tokio::time::timeout(WORKERS_RECHECK, woken).await;
    }
}

/// The running workers by endpoint id. They stop with the supervisor: when the service
/// stops it aborts the supervisor, and dropping this aborts them.
#[derive(Default)]
struct Workers(HashMap<String, (Endpoint, JoinHandle<()>)>);

impl Drop for Workers {
    fn drop(&mut self) {
        for (_, worker) in self.0.values() {
            worker.abort();
        }
    }
}

/// The secrets an endpoint's deliveries are signed with: the configured endpoint's from the
/// environment (this process may not have it configured: then another process sends), an
/// added endpoint's from its row.
fn secrets_of(endpoint: &Endpoint, settings: &MerchantSettings) -> Option<Vec<String>> {
    if endpoint.is_configured() {
        let configured = settings.endpoint.as_ref()?;
        let mut secrets = vec![configured.secret.expose().to_owned()];
        if let Some(previous) = &configured.previous_secret {
            secrets.push(previous.expose().to_owned());
        }
        Some(secrets)
    } else {
        endpoint.secret.clone().map(|secret| vec![secret])
    }
}

struct Worker {
    state: AppState,
    settings: MerchantSettings,
    client: reqwest::Client,
    endpoint_id: String,
    url: String,
    secrets: Vec<String>,
    wake: Arc<Notify>,
}

impl Worker {
    async fn run(self) {
        let lease = self.settings.response_timeout + LEASE_MARGIN;
        loop {
            // Registered before looking, so a wake-up while claiming is not lost.
            let woken = self.wake.notified();
            match deliveries::claim(
                &self.state.store.read,
                &self.endpoint_id,
                lease,
                IN_FLIGHT_PER_ENDPOINT_MAX,
            )
            .await
            {
                Ok(claimed) if claimed.is_empty() => {
                    let _ = tokio::time::timeout(self.settings.sender_poll, woken).await;
                }
                Ok(claimed) => {
                    let sends = claimed.iter().map(|delivery| self.deliver(delivery));
                    futures_join_all(sends).await;
                }
                Err(error) => {
                    tracing::error!(%error, endpoint = %self.endpoint_id, "claiming deliveries failed");
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
            }
        }
    }

    async fn deliver(&self, delivery: &Claimed) {
        let outcome = self.post(&delivery.body).await;
        if !outcome.delivered() {
            tracing::info!(
                delivery = %delivery.id,
                endpoint = %self.endpoint_id,
                code = ?outcome.response_code,
                error = ?outcome.error,
                "merchant webhook not delivered; will retry"
            );
        }
        match deliveries::record(
            &self.state.store.read,
            delivery,
            &outcome,
            &self.settings.retry,
        )
        .await
        {
            Ok(attempt) => {
                if attempt == MerchantAttempt::GaveUp {
                    tracing::warn!(
                        delivery = %delivery.id,
                        endpoint = %self.endpoint_id,
                        "merchant webhook given up after its retry window"
                    );
                }
                self.state.metrics.merchant_attempt(attempt);
            }
            // The lease runs out and the delivery is sent again: at least once.
            Err(error) => {
                tracing::error!(%error, delivery = %delivery.id, "recording a delivery attempt failed");
            }
        }
    }

    async fn post(&self, body: &str) -> AttemptOutcome {
        let started = Instant::now();
        let t = chrono::Utc::now().timestamp();
        let header = signature::header_value(&self.secrets, t, body.as_bytes());
        let result = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, header)
            .body(body.to_owned())
            .send()
            .await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        match result {
            Ok(response) => {
                let code = response.status().as_u16();
                // The answer counts only once its body arrived within the timeout too.
                let error = match response.bytes().await {
                    Ok(_) if (200..300).contains(&code) => None,
                    Ok(_) => Some(format!("answered {code}")),
                    Err(error) => Some(describe(&error)),
                };
                AttemptOutcome {
                    response_code: Some(code),
                    error,
                    duration_ms,
                }
            }
            Err(error) => AttemptOutcome {
                response_code: None,
                error: Some(describe(&error)),
                duration_ms,
            },
        }
    }
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "no answer in time".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        // Without the URL: it may carry credentials.
        std::error::Error::source(error).map_or_else(
            || "the request failed".to_owned(),
            |source| format!("the request failed: {source}"),
        )
    }
}

/// Awaits every future, concurrently, on this task.
async fn futures_join_all<F: Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut pending = set;
    std::future::poll_fn(move |context| {
        pending.retain_mut(|future| future.as_mut().poll(context).is_pending());
        if pending.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
