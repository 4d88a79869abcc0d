//! Ping++ event objects, serialized once and signed over those exact bytes: every copy and
//! retry of an event carries the same body and signature, as the real gateway's do.

use rsa::RsaPrivateKey;
use serde_json::Value;

use super::error::SandboxError;
use super::random;
use gateways::pingpp::signature;
use gateways::pingpp::wire::{Event, EventData};

/// An event ready to POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SignedEvent {
    pub id: String,
    pub event_type: &'static str,
    pub body: Vec<u8>,
    /// Base64 RSA-SHA256 for the `X-Pingplusplus-Signature` header.
    pub signature: String,
}

/// Whether the signature should verify. A corrupt one is a well-formed signature over other
/// bytes, so it fails exactly where a forged webhook would: at verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signing {
    Genuine,
    Corrupt,
}

pub(super) fn signed(
    key: &RsaPrivateKey,
    event_type: &'static str,
    object: Value,
    now: i64,
    signing: Signing,
) -> Result<SignedEvent, SandboxError> {
    let event = Event {
        id: random::event_id(),
        object: "event".to_owned(),
        created: now,
        livemode: false,
        event_type: event_type.to_owned(),
        data: EventData { object },
        pending_webhooks: 0,
        request: Some(random::request_id()),
    };
    let body = serde_json::to_vec(&event).map_err(SandboxError::internal)?;
    let signature = match signing {
        Signing::Genuine => signature::sign(key, &body),
        Signing::Corrupt => {
            let mut other = body.clone();
            other.extend_from_slice(b" tampered");
            signature::sign(key, &other)
        }
    };
    Ok(SignedEvent {
        id: event.id,
        event_type,
        body,
        signature,
    })
}
