//! What every event carries besides its payload: who asked, through which door, the gateway's
//! own id for the fact, and when we recorded it. Stored as the event's metadata map.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User(String),
    Admin(String),
    Gateway,
    System,
}

impl Actor {
    fn render(&self) -> String {
        match self {
            Self::User(id) => format!("user:{id}"),
            Self::Admin(id) => format!("admin:{id}"),
            Self::Gateway => "gateway".to_owned(),
            Self::System => "system".to_owned(),
        }
    }
}

/// Which entry point an event came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Api,
    Webhook,
    Reconciler,
    Cli,
    /// A process manager reacting to earlier events.
    Process,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Webhook => "webhook",
            Self::Reconciler => "reconciler",
            Self::Cli => "cli",
            Self::Process => "process",
        }
    }
}

/// The metadata attached to every event a command produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMetadata {
    pub request_id: String,
    pub actor: Actor,
    pub source: Source,
    pub gateway_event_id: Option<String>,
    /// Our wall clock when the command ran (the database adds its own commit-time stamp too).
    pub recorded_at: DateTime<Utc>,
}

/// Metadata keys, stable because auditors query them.
pub mod keys {
    pub const REQUEST_ID: &str = "request_id";
    pub const ACTOR: &str = "actor";
    pub const SOURCE: &str = "source";
    pub const GATEWAY_EVENT_ID: &str = "gateway_event_id";
    pub const RECORDED_AT: &str = "recorded_at";
}

impl EventMetadata {
    /// What the reconciler's own decisions (an expiry, a refund that never reached the
    /// gateway) carry: the system acting on its own, in the pass `request_id` names.
    pub fn reconciler(request_id: &str) -> Self {
        Self {
            request_id: request_id.to_owned(),
            actor: Actor::System,
            source: Source::Reconciler,
            gateway_event_id: None,
            recorded_at: Utc::now(),
        }
    }

    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::new();
        map.insert(keys::REQUEST_ID.to_owned(), self.request_id.clone());
        map.insert(keys::ACTOR.to_owned(), self.actor.render());
        map.insert(keys::SOURCE.to_owned(), self.source.as_str().to_owned());
        if let Some(id) = &self.gateway_event_id {
            map.insert(keys::GATEWAY_EVENT_ID.to_owned(), id.clone());
        }
        map.insert(
            keys::RECORDED_AT.to_owned(),
            self.recorded_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        map
    }
}
