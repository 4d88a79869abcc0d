//! The merchant hears about it: signed outbound webhooks derived from the log, the endpoints
//! they go to, and memberships that end on time.
//!
//! The outbox follower turns log events into deliveries (with its checkpoint, in one
//! transaction), one sender worker per endpoint posts them with a `Payledger-Signature`, and
//! the expiry pass records `MembershipExpired` when a membership's time is up.

pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod expiry;
pub mod outbox;
pub mod sender;
pub mod settings;
pub mod signature;

use std::sync::Arc;

use tokio::task::JoinHandle;

pub use settings::MerchantSettings;

use crate::state::AppState;

/// Why a merchant-facing operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MerchantError {
    #[error(
        "url must be an http:// or https:// URL without spaces, at most {} characters",
        endpoints::URL_LENGTH_MAX
    )]
    InvalidUrl,
    #[error("`{0}` is not a merchant event type")]
    UnknownEventType(String),
    #[error("at most {} webhook endpoints may be active", endpoints::ENDPOINTS_MAX)]
    TooManyEndpoints,
    #[error("the endpoint configured in the environment is changed there, not through the API")]
    ConfiguredEndpoint,
    #[error("no such webhook endpoint")]
    EndpointNotFound,
    #[error("no such webhook delivery")]
    DeliveryNotFound,
    #[error("the delivery's endpoint was deleted; nothing would send it")]
    EndpointDeleted,
    #[error("`{0}` is not a delivery status (pending, delivered, failed)")]
    UnknownStatus(String),
    #[error("reading an event's data failed: {0}")]
    Data(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Log(#[from] projections::LogError),
}

/// Registers the configured endpoint and starts the outbox, the senders and the expiry pass.
pub async fn start(
    state: &AppState,
    settings: &MerchantSettings,
) -> Result<Vec<JoinHandle<()>>, MerchantError> {
    endpoints::register_configured(&state.store.read, settings.endpoint.as_ref()).await?;
    outbox::prepare(state).await?;
    let wake = Arc::clone(&state.outbound);
    Ok(vec![
        tokio::spawn(outbox::follow(
            state.clone(),
            settings.retry.give_up_after,
            Arc::clone(&wake),
        )),
        tokio::spawn(sender::supervise(
            state.clone(),
            settings.clone(),
            Arc::clone(&wake),
        )),
        tokio::spawn(expiry::follow(state.clone(), settings.clone(), wake)),
    ])
}
