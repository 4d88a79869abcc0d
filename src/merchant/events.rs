//! The events a merchant hears about, derived from the log: which log events become which
//! merchant event type, their stable ids, and the JSON every delivery and the feed carry.

use aggregates::{Order, OrderEvent, Subscription, SubscriptionEvent};
use cqrs_es::Aggregate;
use projections::log::{LedgerEvent, StoredEvent};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::membership::MembershipBody;
use crate::api::orders::OrderBody;
use crate::error::ApiError;
use crate::state::AppState;

/// A merchant event type; the names are a public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    OrderPaid,
    OrderExpired,
    OrderRefundSucceeded,
    OrderRefundFailed,
    OrderNeedsReview,
    MembershipActivated,
    MembershipExtended,
    MembershipRevoked,
    MembershipExpired,
    MembershipExpiring,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::OrderPaid,
        EventType::OrderExpired,
        EventType::OrderRefundSucceeded,
        EventType::OrderRefundFailed,
        EventType::OrderNeedsReview,
        EventType::MembershipActivated,
        EventType::MembershipExtended,
        EventType::MembershipRevoked,
        EventType::MembershipExpired,
        EventType::MembershipExpiring,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::OrderPaid => "order.paid",
            EventType::OrderExpired => "order.expired",
            EventType::OrderRefundSucceeded => "order.refund_succeeded",
            EventType::OrderRefundFailed => "order.refund_failed",
            EventType::OrderNeedsReview => "order.needs_review",
            EventType::MembershipActivated => "membership.activated",
            EventType::MembershipExtended => "membership.extended",
            EventType::MembershipRevoked => "membership.revoked",
            EventType::MembershipExpired => "membership.expired",
            EventType::MembershipExpiring => "membership.expiring",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// What an event is about: the resource its `data` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Order(String),
    /// A member, by user id.
    Membership(String),
}

impl Subject {
    /// Deliveries with one key go out in position order.
    pub fn ordering_key(&self) -> String {
        match self {
            Subject::Order(order_id) => format!("order:{order_id}"),
            Subject::Membership(user_id) => format!("membership:{user_id}"),
        }
    }
}

/// One merchant event as it is delivered and listed in the feed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MerchantEvent {
    /// Stable across redeliveries: the receiver deduplicates by it.
    pub id: String,
    /// `order.paid`, `order.expired`, `order.refund_succeeded`, `order.refund_failed`,
    /// `order.needs_review`, `membership.activated`, `membership.extended`,
    /// `membership.revoked`, `membership.expiring` or `membership.expired`.
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// When the fact was recorded, unix seconds.
    pub created: i64,
    /// The log position of the fact (for `membership.expiring`, of the membership's last
    /// change).
    pub position: i64,
    /// The order or membership as the API shows it; null when it could not be read.
    #[schema(required = true)]
    pub data: Option<EventData>,
}

/// What a merchant event is about, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EventData {
    /// `order.*` events: the order as `GET /v1/orders/{id}` shows it.
    Order(Box<OrderBody>),
    /// `membership.*` events: the membership as `GET /v1/membership` shows it to its member.
    Membership(MembershipBody),
}

/// The id of the event derived from the log event at `position`.
pub fn event_id(position: i64) -> String {
    format!("evt_{position}")
}

/// The id of the expiring notice of the membership whose last change is at `position`: one
/// notice per end date.
pub fn expiring_event_id(position: i64) -> String {
    format!("evt_{position}_expiring")
}

/// The merchant event type a log event becomes, and what it is about; None for the facts a
/// merchant is not told (an order created, a charge requested, a refund requested).
pub fn classify(event: &StoredEvent) -> Option<(EventType, Subject)> {
    let kind = match &event.event {
        LedgerEvent::Order(order_event) => match order_event {
            OrderEvent::PaymentConfirmed { .. } => EventType::OrderPaid,
            OrderEvent::OrderExpired { .. } => EventType::OrderExpired,
            OrderEvent::Refunded { .. } => EventType::OrderRefundSucceeded,
            OrderEvent::RefundFailed { .. } => EventType::OrderRefundFailed,
            OrderEvent::PaymentAmountMismatch { .. }
            | OrderEvent::LatePaymentReceived { .. }
            | OrderEvent::DuplicatePaymentReceived { .. } => EventType::OrderNeedsReview,
            OrderEvent::OrderCreated { .. }
            | OrderEvent::ChargeRequested { .. }
            | OrderEvent::PaymentFailed { .. }
            | OrderEvent::OrderCancelled { .. }
            | OrderEvent::RefundRequested { .. } => return None,
        },
        LedgerEvent::Subscription(subscription_event) => match subscription_event {
            SubscriptionEvent::MembershipActivated { .. } => EventType::MembershipActivated,
            SubscriptionEvent::MembershipExtended { .. } => EventType::MembershipExtended,
            SubscriptionEvent::MembershipRevoked { .. } => EventType::MembershipRevoked,
            SubscriptionEvent::MembershipExpired { .. } => EventType::MembershipExpired,
        },
        LedgerEvent::Other => return None,
    };
    let subject = match event.aggregate_type.as_str() {
        t if t == Order::TYPE => Subject::Order(event.aggregate_id.clone()),
        t if t == Subscription::TYPE => Subject::Membership(event.aggregate_id.clone()),
        _ => return None,
    };
    Some((kind, subject))
}

/// When the ledger recorded the event (its own clock, from the metadata), unix seconds.
fn created(event: &StoredEvent) -> i64 {
    event
        .metadata
        .get("recorded_at")
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .map_or_else(|| chrono::Utc::now().timestamp(), |at| at.timestamp())
}

/// The resource as the API shows it now (the views include the event when this is called
/// right after it, which is how the outbox and the feed call it).
pub async fn data(state: &AppState, subject: &Subject) -> Result<Option<EventData>, ApiError> {
    match subject {
        Subject::Order(order_id) => Ok(crate::api::orders::order_data(state, order_id)
            .await?
            .map(|order| EventData::Order(Box::new(order)))),
        Subject::Membership(user_id) => Ok(Some(EventData::Membership(
            crate::api::membership::membership_data(state, user_id).await?,
        ))),
    }
}

/// The merchant event a log event becomes, with its data; None when the merchant is not told.
pub async fn from_log(
    state: &AppState,
    event: &StoredEvent,
) -> Result<Option<(MerchantEvent, Subject)>, ApiError> {
    let Some((kind, subject)) = classify(event) else {
        return Ok(None);
    };
    let merchant_event = MerchantEvent {
        id: event_id(event.position),
        event_type: kind.as_str(),
        created: created(event),
        position: event.position,
        data: data(state, &subject).await?,
    };
    Ok(Some((merchant_event, subject)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names_round_trip_and_are_unique() {
        let mut names: Vec<&str> = EventType::ALL.iter().map(|kind| kind.as_str()).collect();
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
        assert_eq!(EventType::parse("order.created"), None);
    }

    #[test]
    fn ids_are_stable_per_position() {
        assert_eq!(event_id(42), "evt_42");
        assert_eq!(expiring_event_id(42), "evt_42_expiring");
        assert_ne!(event_id(42), expiring_event_id(42));
    }
}
